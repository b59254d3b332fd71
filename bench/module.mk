# bench/: benchmark programs; each area adds its own fragment bench/*.mk.
include $(filter-out bench/module.mk,$(wildcard bench/*.mk))
