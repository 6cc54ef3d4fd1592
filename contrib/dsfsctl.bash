# bash completion for dsfsctl(8): its commands, each command's options,
# layer names after --layer, then directories (a STORE, a SRC) and files
# (an IMAGE, a document, an archive).  Installed by make install in
# $(datadir)/bash-completion/completions/dsfsctl.

_dsfsctl()
{
	local cur prev cmd i
	local commands="mkfactory install-factory factory-reset dump load diff usage check"
	commands+=" watch get set update"
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	cmd=
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*)
			cmd=${COMP_WORDS[i]}
			break
			;;
		esac
	done
	if [ -z "$cmd" ]; then
		mapfile -t COMPREPLY < <(compgen -W "$commands -h -V --help --version" -- "$cur")
		return
	fi
	case $prev in
	--layer)
		mapfile -t COMPREPLY < <(compgen -W "ephemeral runtime factory" -- "$cur")
		return
		;;
	-s)
		return
		;;
	--prefix | --keep)
		return
		;;
	esac
	if [[ $cur == -* ]]; then
		local opts="-h"
		case $cmd in
		mkfactory) opts="-h -s --progress --no-progress" ;;
		factory-reset) opts="-h --prefix --keep --dry-run" ;;
		dump) opts="-h --layer --archive" ;;
		load) opts="-h --replace --archive --progress --no-progress" ;;
		check) opts="-h --progress --no-progress" ;;
		diff) opts="-h --json" ;;
		usage) opts="-h --json" ;;
		esac
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
		return
	fi
	case $cmd in
	mkfactory | factory-reset | diff | usage | check | dump | watch)
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		;;
	get | set | update)
		# STORE, then a PATH inside it and a value or a command: the
		# local files are no help there.
		[ "${COMP_WORDS[COMP_CWORD - 1]}" = "$cmd" ] &&
			mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		;;
	*)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		;;
	esac
}
complete -o filenames -F _dsfsctl dsfsctl
