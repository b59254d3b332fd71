# bench/: benchmark programs; each area adds its own fragment bench/*.mk.
include $(wildcard bench/*.mk)
