# bash completion for strata, strata-admin, stratad and stratafs.
# Installed as $(PREFIX)/share/bash-completion/completions/strata (with links for the others).

_strata_words() { # prints the words that fit the command line so far
	local cmd=$1 sub=$2
	case "$cmd" in
	"") echo "table apply export put delete get history join preload jobs help" ;;
	table)
		case "$sub" in
		create) echo "--feature --ttl --retention --max-versions --entity-column" ;;
		alter) echo "--feature --ttl --retention --max-versions" ;;
		list|show) echo "--json" ;;
		drop) echo "--yes" ;;
		*) echo "create list show alter drop" ;;
		esac ;;
	apply) echo "--dry-run --prune --force" ;;
	export) echo "--format --out" ;;
	put|delete) echo "--ts" ;;
	get) echo "--as-of --known-at --json --with-status" ;;
	history) echo "--from --to --limit --known-at --json" ;;
	join) echo "--samples --features --out --ts-column --entity-column --known-at --with-status --before-horizon --format" ;;
	preload) echo "--format --skip-bad-rows --ts-column --wait --json" ;;
	jobs) echo "cancel resume --wait --json" ;;
	esac
}

_strata() {
	local cur prev cmd="" sub="" i
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	case "$prev" in
	--data-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--token-file|--samples|--out) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--ts-unit) COMPREPLY=($(compgen -W "s ms us" -- "$cur")); return ;;
	--format) COMPREPLY=($(compgen -W "csv tsv jsonl yaml json" -- "$cur")); return ;;
	--before-horizon) COMPREPLY=($(compgen -W "error skip" -- "$cur")); return ;;
	--addr|--ts|--as-of|--known-at|--from|--to|--ttl|--retention|--feature|--features|\
	--limit|--max-versions|--entity-column|--ts-column) return ;;
	esac
	for ((i = 1; i < COMP_CWORD; i++)); do
		case "${COMP_WORDS[i]}" in
		--data-dir|--addr|--token-file|--ts-unit) ((i++)) ;;
		-*) ;;
		*) if [ -z "$cmd" ]; then cmd=${COMP_WORDS[i]}; elif [ -z "$sub" ]; then sub=${COMP_WORDS[i]}; fi ;;
		esac
	done
	if [[ "$cur" == -* ]]; then
		COMPREPLY=($(compgen -W "$(_strata_words "$cmd" "$sub") --addr --data-dir --token-file --ts-unit --allow-any-ts --json --help --version" -- "$cur"))
	elif [ -n "$cmd" ] && [[ "$cmd" =~ ^(apply|preload)$ ]]; then
		COMPREPLY=($(compgen -f -- "$cur"))
	else
		COMPREPLY=($(compgen -W "$(_strata_words "$cmd" "$sub")" -- "$cur"))
	fi
}

_strata_admin() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	case "$prev" in
	--data-dir|--mount|--backing) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--out) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	esac
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "trash rmr fs backup restore verify compact stats dump --help --version" -- "$cur"))
		return
	fi
	local words
	case "${COMP_WORDS[1]}" in
	trash) words="list restore purge --mount --backing --user --json --to --overwrite --older-than --all-users" ;;
	rmr) words="status drain --via-trash --json --wait --mount --backing" ;;
	fs) words="status --mount --json" ;;
	backup|verify|stats) words="--data-dir --addr --token-file --json" ;;
	compact) words="--data-dir --json" ;;
	restore) words="--data-dir --force --json" ;;
	dump) words="--data-dir --out --all-versions --json" ;;
	esac
	COMPREPLY=($(compgen -W "$words --help" -- "$cur"))
	[[ "$cur" == -* ]] || COMPREPLY+=($(compgen -f -- "$cur"))
}

_stratad() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	case "$prev" in
	--data-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--config|--auth-token-file|--ready-file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--io) COMPREPLY=($(compgen -W "auto uring epoll" -- "$cur")); return ;;
	--sync) COMPREPLY=($(compgen -W "always batch none" -- "$cur")); return ;;
	esac
	COMPREPLY=($(compgen -W "--config --data-dir --listen --admin --threads --workers --read-workers --io --sync --auth-token-file --max-conns --max-inflight --max-frame --max-value --max-output --idle-timeout --stall-timeout --drain-timeout --handshake-timeout --frame-timeout --shards --cache --row-cache --inline-reads --ready-file --verbose --help --version" -- "$cur"))
}

_stratafs() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	if [[ "$cur" == -* ]]; then
		COMPREPLY=($(compgen -W "-f -d -o --trash-retention --threads --attr-timeout --writeback-cache --no-passthrough --rmr-threads --rmr-rate --max-inode-fds --help --version" -- "$cur"))
	else
		COMPREPLY=($(compgen -d -- "$cur"))
	fi
}

complete -F _strata strata
complete -F _strata_admin strata-admin
complete -F _stratad stratad
complete -F _stratafs stratafs
