# tests/bench/report.sh - the report of `make bench`, sourced by
# tests/bench/run once every workload has run: the table of medians and
# ratios (table), the issue's targets checked against it (targets), each
# workload against the fewest requests it waits for at their measured
# costs (limits), and a create on a shared runtime against its parts
# (pg_limits).  It reads the run's results (RES, RT, the settings) and
# prints Markdown; it runs nothing.

# stats "SAMPLES" DIV: "median min max count" of the samples divided by
# DIV, or "fail" if any sample failed, "timeout" if any ran out of time,
# or "" if there are none.
stats() {
	printf '%s\n' $1 | awk -v d="$2" '
		$1 == "fail" { bad = 1; next }
		$1 == "timeout" { late = 1; next }
		NF { v[n++] = $1 / d }
		END {
			if (bad) { print "fail"; exit }
			if (late) { print "timeout"; exit }
			if (!n) exit
			# insertion sort: a handful of samples
			for (i = 1; i < n; i++) {
				x = v[i]
				for (j = i - 1; j >= 0 && v[j] > x; j--) v[j + 1] = v[j]
				v[j + 1] = x
			}
			m = n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2
			printf "%.6g %.6g %.6g %d\n", m, v[0], v[n - 1], n
		}'
}
fmt() { awk -v x="$1" 'BEGIN { if (x >= 100) printf "%.0f", x; else if (x >= 10) printf "%.1f", x; else printf "%.2f", x }'; }
median() {
	local s
	s=$(stats "${RES[$1|$2]:-}" 1)
	case $s in "" | fail | timeout) return 1 ;; esac
	echo "${s%% *}"
}

ROWS=(
	"w1|1|W1 create+write+close (µs/file)|r"
	"w2|1|W2 overwrite, O_TRUNC (µs/file)|r"
	"w3c|1|W3 read cold, after remount (µs/file)|r"
	"w3w|1|W3 read warm (µs/file)|r"
	"w4|1|W4 lstat (µs/file)|r"
	"w5|1000|W5 list $N entries (ms/listing)|r"
	"w6|1|W6 unlink (µs/file)|r"
	"w8|1|W8 2 threads overwrite+read (wall µs/op)|r"
	"w9w|1000|W9 write 1 MiB image, 64 KiB writes (ms)|r"
	"w9r|1000|W9 read back 1 MiB image (ms)|r"
	"w9d|1000|W9 durable: a new 1 MiB file synced and named on the store's disk, no FUSE, on the daemon's CPU (ms)|-"
	"w9b|1000|W9 write beside: passthrough_ll's write of each image right after dsfs's (ms)|-"
	"w9xw|1000|W9 write on the daemon's CPU (ms)|-"
	"w9xr|1000|W9 read back on the load CPU of an image written on the daemon's (ms)|-"
	"w7c0|1|W7 baseline: create+write+close at $N (µs/file)|r"
	"w7r0|1|W7 baseline: read cold at $N (µs/file)|r"
	"w7l0|1000|W7 baseline: list $N entries (ms/listing)|r"
	"w7c|1|W7 create+write+close at $N7 (µs/file)|r"
	"w7r|1|W7 read cold at $N7 (µs/file)|r"
	"w7l|1000|W7 list $N7 entries (ms/listing)|r"
	"g7c|1|W7 growth $N→$N7 create (per op)|g"
	"g7r|1|W7 growth $N→$N7 read cold (per op)|g"
	"g7l|1|W7 growth $N→$N7 list (per entry)|g"
	"mount|1|mount time, new empty store (ms)|-"
	"rss10k|1|daemon peak RSS after the $N-file workloads (MiB)|-"
	"rss100k|1|daemon peak RSS at $N7 entries (MiB)|-"
	"mountempty|1|mount time, empty store (ms)|-"
	"mountbig|1|mount time, $NBIG entries (ms)|-"
	"listbig|1000|ls -f of $NBIG entries (s)|-"
	"walkbig|1|readdir + lstat each + read 1 in 100, $NBIG entries (µs/entry)|-"
	"rssbig|1|daemon peak RSS at $NBIG entries (MiB)|-"
)

# growth ratio of target t: W7 key over the same workload at N, as
# measured right before it in the same W7 repetition (w7c0, w7r0, w7l0):
# both sizes then meet the same machine, whose disk's sync time moves
# through a run by more than dsfs's own growth (README, runs 14 and 16).
growth() {
	local t=$1 g=$2 a b
	case $g in
	g7c) a=$(median "$t" w7c) b=$(median "$t" w7c0) ;;
	g7r) a=$(median "$t" w7r) b=$(median "$t" w7r0) ;;
	g7l) a=$(median "$t" w7l) b=$(median "$t" w7l0)
	     [ -n "$a" ] && a=$(awk -v x="$a" -v n="$N7" -v m="$N" 'BEGIN { print x * m / n }') ;;
	esac
	[ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
}

cell() {
	local t=$1 key=$2 div=$3 kind=$4 s med lo hi n ref c
	if ! available "$t"; then echo "skip"; return; fi
	if [ "$kind" = g ]; then
		c=$(growth "$t" "$key")
		if [ -z "$c" ]; then
			case " ${RES[$t|w7c]:-}${RES[$t|w7r]:-}${RES[$t|w7l]:-} " in
			*fail*) c=fail ;;
			*timeout*) c=timeout ;;
			esac
		fi
		echo "${c:-—}"
		return
	fi
	s=$(stats "${RES[$t|$key]:-}" "$div")
	if [ -z "$s" ]; then echo "—"; return; fi
	case $s in fail | timeout) echo "$s"; return ;; esac
	read -r med lo hi n <<<"$s"
	c="$(fmt "$med") ($(fmt "$lo")–$(fmt "$hi"))"
	if [ "$kind" = r ] && available ptll; then
		ref=$(stats "${RES[ptll|$key]:-}" "$div")
		case $ref in
		"" | fail) ;;
		*) c="$c $(awk -v a="$med" -v b="${ref%% *}" 'BEGIN { printf "%.2f×", a / b }')" ;;
		esac
	fi
	echo "$c"
}

W7REPS=
for t in $TARGETS; do
	available "$t" || continue
	c=$(printf '%s\n' ${RES[$t|w7c]:-} | grep -c .)
	W7REPS="$W7REPS $(label "$t")=$c,"
done

table() {
	local row key div name kind t line
	echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC'), dsfs $COMMIT"
	echo
	echo "Machine: $NCPU CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr);" \
		"load average $LOAD0 at the start, $LOAD1 at the end; open-file limit $(ulimit -n);" \
		"$DISKDIR on $(stat -f -c %T "$DISKDIR")."
	echo "Settings: N=$N files, $REPS repetitions, W5 $R5 listings, W9 $NIMG images, W7 at $N7 files" \
		"(repetitions made:${W7REPS%,}; budget ${W7_BUDGET} s per target, ${W7_CAP} s per pass), big store $NBIG entries" \
		"(filled directly into runtime.db${FILL_S:+ in $FILL_S s}, then mounted and walked)." \
		"Daemons pinned to CPU $DCPU, load generator to CPU $LCPU. Total time $(((END - START) / 60)) min $(((END - START) % 60)) s."
	if [ -n "$PG_FLUSH_US" ]; then
		echo
		echo "PostgreSQL server of dsfs (runtime=postgresql): data on $(stat -f -c %T "$PGB"), fsync on;" \
			"one WAL flush there (pg_test_fsync, fdatasync of one 8 kB write) costs $PG_FLUSH_US µs:" \
			"the floor of every durable commit${PG_RT_US:+; one round trip to the server (pgbench, a prepared SELECT 1, on CPU $DCPU) $PG_RT_US µs}${PG_CREATE_US:+; what the server and the round trips to it take of one create (its round trips replayed by pgbench, tests/bench/pg_create.sql, on CPU $DCPU) $PG_CREATE_US µs}${PG_COMMIT_US:+, of its commit alone $PG_COMMIT_US µs}."
	fi
	echo
	echo "Cells: median (min–max) over the repetitions, then the ratio of the median to passthrough_ll's (default options)."
	echo
	line="| workload |"
	for t in $TARGETS; do line="$line $(label "$t") |"; done
	echo "$line"
	line="|---|"
	for t in $TARGETS; do line="$line---|"; done
	echo "$line"
	for row in "${ROWS[@]}"; do
		IFS='|' read -r key div name kind <<<"$row"
		case $key in
		mountempty | mountbig | listbig | walkbig | rssbig)
			[ "$NBIG" -gt 0 ] || continue ;;
		esac
		line="| $name |"
		for t in $TARGETS; do
			case $key in
			mountempty | mountbig | listbig | walkbig | rssbig)
				[ "$t" = dsfs_disk ] || { line="$line — |"; continue; } ;;
			mount | rss10k | rss100k)
				case $t in tmpfs | sqlite) line="$line — |"; continue ;; esac ;;
			esac
			line="$line $(cell "$t" "$key" "$div" "$kind") |"
		done
		echo "$line"
	done
}

# targets: ratio of dsfs to passthrough_ll (issue 4)
ratio() {
	local a b
	a=$(median "$1" "$2") b=$(median ptll "$2")
	[ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
}
verdict() { # value goal
	if [ -z "$1" ]; then echo "n/a"; return; fi
	awk -v v="$1" -v g="$2" 'BEGIN { print (v <= g ? "met" : "not met") }'
}
targets() {
	local t v row goal key what unit
	echo
	echo "Targets of issue 4 (dsfs against passthrough_ll in this run):"
	for row in "w1|1.0|W1 create+write+close|×" "w2|0.8|W2 overwrite|×" "w3w|0.3|W3 read warm|×" \
		"w4|0.3|W4 lstat|×" "w5|0.2|W5 readdir|×" "w6|1.0|W6 unlink|×" \
		"w9w|1.0|W9 image write|×" "w9r|0.1|W9 image read|×" \
		"g7c|1.2|W7 growth create|" "g7r|1.2|W7 growth read|" "g7l|1.2|W7 growth list|" \
		"rssbig|32|RSS at $NBIG entries|MiB" "mountbig|2.0|mount at $NBIG entries / empty|×"; do
		IFS='|' read -r key goal what unit <<<"$row"
		printf -- '- %s ≤ %s%s:' "$what" "$goal" "${unit/MiB/ MiB}"
		for t in dsfs_disk dsfs_tmpfs; do
			[[ " $TARGETS " == *" $t "* ]] || continue
			case $key in
			g7*) v=$(growth "$t" "$key") ;;
			rssbig) [ "$t" = dsfs_disk ] || continue; v=$(median "$t" rssbig) ;;
			mountbig)
				[ "$t" = dsfs_disk ] || continue
				v=$(median "$t" mountbig)
				[ -n "$v" ] && v=$(awk -v a="$v" -v b="$(median "$t" mountempty)" 'BEGIN { if (b > 0) printf "%.2f", a / b }') ;;
			*) v=$(ratio "$t" "$key") ;;
			esac
			printf ' %s %s%s %s;' "$(label "$t")" "${v:-n/a}" "${unit/MiB/ MiB}" "$(verdict "$v" "$goal")"
		done
		echo
	done
}

# The least time a workload can take on a FUSE filesystem that commits
# each change, from this run's own figures: what the kernel does anyway
# (tmpfs), plus one FUSE round trip per request (passthrough_ll's lstat,
# which is one LOOKUP, less tmpfs's lstat), plus the store's own work
# (SQLite alone doing the same changes on the same disk).  Printed for
# dsfs's own request count and for passthrough_ll's.  FORGET has no reply,
# and RELEASE is sent after close(2) has returned: neither is waited for.
shown() { fmt "$(awk -v x="$1" -v s="$2" 'BEGIN { print x / s }')"; } # FIGURE SCALE
waited() { # "TOTAL (OP N, OP N...)": the requests a process waits for
	awk -v s="$1" 'BEGIN {
		n = split(s, w, /[ (),]+/); t = w[1]
		for (i = 2; i < n; i += 2)
			if (w[i] ~ /^(FORGET|BATCH_FORGET|RELEASE|RELEASEDIR)$/) t -= w[i + 1]
		printf "%.2g", t }'
}
limits() {
	local t rt row key step what scale unit vfs com n np lim limp d
	for t in tmpfs ptll sqlite dsfs_disk; do
		[[ " $TARGETS " == *" $t "* ]] || return 0
	done
	rt=$(awk -v a="$(median ptll w4)" -v b="$(median tmpfs w4)" \
		'BEGIN { if (a != "" && b != "" && a > b) printf "%.3g", a - b }')
	[ -n "$rt" ] || return 0
	echo
	echo "Physical limits: one FUSE round trip costs $rt µs here (passthrough_ll's lstat, one LOOKUP, less tmpfs's);" \
		"the limit is tmpfs's time + the requests waited for × that + SQLite alone's time for the same change."
	# Every figure is in µs; a listing's is shown in ms (its table row).
	for row in "w1|create|W1 create+write+close|1" "w2|overwrite|W2 overwrite|1" \
		"w3w|read_warm|W3 read warm|1" "w4|lstat|W4 lstat|1" \
		"w5|list|W5 list $N entries (per listing, the first one after a remount among $R5)|1000" \
		"w6|unlink|W6 unlink|1"; do
		IFS='|' read -r key step what scale <<<"$row"
		n=$(waited "${RT[dsfs_disk|$step]:-}") np=$(waited "${RT[ptll|$step]:-}")
		vfs=$(median tmpfs "$key") com=$(median sqlite "$key") d=$(median dsfs_disk "$key")
		if [ -z "$n" ] || [ -z "$np" ] || [ -z "$vfs" ] || [ -z "$com" ] || [ -z "$d" ]; then
			echo "- $what: n/a"
			continue
		fi
		unit=µs
		[ "$scale" = 1000 ] && unit=ms
		read -r lim limp <<<"$(awk -v v="$vfs" -v r="$rt" -v n="$n" -v p="$np" -v c="$com" \
			'BEGIN { printf "%.4g %.4g", v + n * r + c, v + p * r + c }')"
		printf -- '- %s: dsfs (disk) %s %s for %s requests waited for, of %s; limit %s + %s × %s µs + %s = %s %s, so %s× the limit;' \
			"$what" "$(shown "$d" "$scale")" "$unit" "$n" "${RT[dsfs_disk|$step]#* }" "$(shown "$vfs" "$scale")" \
			"$n" "$rt" "$(shown "$com" "$scale")" "$(shown "$lim" "$scale")" "$unit" \
			"$(awk -v a="$d" -v b="$lim" 'BEGIN { printf "%.2f", a / b }')"
		printf ' with passthrough_ll'"'"'s %s the limit is %s %s (%s× it, %s× passthrough_ll)\n' \
			"$np" "$(shown "$limp" "$scale")" "$unit" "$(awk -v a="$d" -v b="$limp" 'BEGIN { printf "%.2f", a / b }')" \
			"$(awk -v a="$limp" -v b="$(median ptll "$key")" 'BEGIN { printf "%.2f", a / b }')"
	done
	# An image: passthrough_ll's W9 write is the FUSE requests of a
	# 1 MiB write at their measured cost (the bytes go to the page cache
	# under it), written image by image beside dsfs's own (loadgen -B)
	# when passthrough_ll could be mounted there, else its own pass's;
	# one commit of it is a new file made durable under its name
	# (loadgen -D, on the store's disk, image by image too, on the
	# daemon's CPU, where a commit syncs) and a row (SQLite alone's W1).
	d=$(median dsfs_disk w9w) vfs=$(median dsfs_disk w9b) lim=$(median dsfs_disk w9d) com=$(median sqlite w1)
	beside="'s, written beside it,"
	if [ -z "$vfs" ]; then
		vfs=$(median ptll w9w)
		beside="'s"
	fi
	if [ -z "$d" ] || [ -z "$vfs" ] || [ -z "$lim" ] || [ -z "$com" ]; then
		echo "- W9 write 1 MiB image: n/a"
		return 0
	fi
	printf -- '- W9 write 1 MiB image: dsfs (disk) %s ms; limit passthrough_ll%s %s ms + a durable new 1 MiB file made on the daemon'"'"'s CPU %s ms + SQLite alone'"'"'s W1 %s µs = %s ms, so %s× the limit\n' \
		"$(shown "$d" 1000)" "$beside" "$(shown "$vfs" 1000)" "$(shown "$lim" 1000)" "$(fmt "$com")" \
		"$(shown "$(awk -v a="$vfs" -v b="$lim" -v c="$com" 'BEGIN { print a + b + c }')" 1000)" \
		"$(awk -v x="$d" -v a="$vfs" -v b="$lim" -v c="$com" 'BEGIN { printf "%.2f", x / (a + b + c) }')"
	# Reading an image back: the reader's copy out of the page cache
	# (tmpfs's own read back), the bytes put into the kernel's pages
	# once, by a READ's reply or a store, as any FUSE filesystem must
	# (tmpfs's write of the image: new pages filled from memory), and
	# the requests waited for (a read back's: the image pass's less the
	# write-only pass's).  A FUSE daemon fills the pages on its CPU and
	# the reader copies them out on its own: tmpfs's pass with the
	# write on the daemon's CPU and the read back on the load CPU
	# measures those two there (its one-CPU figures when it is missing).
	d=$(median dsfs_disk w9r) vfs=$(median tmpfs w9xr) com=$(median tmpfs w9xw)
	where="on the load CPU, of pages filled on the daemon's"
	if [ -z "$vfs" ] || [ -z "$com" ]; then
		vfs=$(median tmpfs w9r) com=$(median tmpfs w9w)
		where="on one CPU"
	fi
	n=$(awk -v a="$(waited "${RT[dsfs_disk|image]:-}")" -v b="$(waited "${RT[dsfs_disk|image_w]:-}")" \
		'BEGIN { if (a != "" && b != "") printf "%.2g", a - b }')
	np=$(awk -v a="$(waited "${RT[ptll|image]:-}")" -v b="$(waited "${RT[ptll|image_w]:-}")" \
		'BEGIN { if (a != "" && b != "") printf "%.2g", a - b }')
	if [ -z "$d" ] || [ -z "$vfs" ] || [ -z "$com" ] || [ -z "$n" ] || [ -z "$np" ]; then
		echo "- W9 read back 1 MiB image: n/a"
		return 0
	fi
	read -r lim limp <<<"$(awk -v v="$vfs" -v r="$rt" -v n="$n" -v p="$np" -v c="$com" \
		'BEGIN { printf "%.4g %.4g", v + n * r + c, v + p * r + c }')"
	printf -- '- W9 read back 1 MiB image: dsfs (disk) %s ms for %s requests waited for; limit tmpfs'"'"'s read back %s %s ms + %s × %s µs + tmpfs'"'"'s write of it %s ms (its pages filled once) = %s ms, so %s× the limit; with passthrough_ll'"'"'s %s the limit is %s ms (%s× it)\n' \
		"$(shown "$d" 1000)" "$n" "$where" "$(shown "$vfs" 1000)" "$n" "$rt" "$(shown "$com" 1000)" \
		"$(shown "$lim" 1000)" "$(awk -v a="$d" -v b="$lim" 'BEGIN { printf "%.2f", a / b }')" \
		"$np" "$(shown "$limp" 1000)" "$(awk -v a="$d" -v b="$limp" 'BEGIN { printf "%.2f", a / b }')"
}

# pg_limits: a create on a shared runtime against the sum of its two
# parts, each measured without the other: the FUSE requests and the
# daemon's work (dsfs on runtime=memory, the same workload, with the same
# busy_poll) and the server's part (PG_CREATE_US: its round trips
# replayed by pgbench; PG_COMMIT_US: the commit alone, all that a create
# on a mount with cache_timeout asks of the server).
pg_limit() { # TARGET MEMTARGET SERVER_US TEXT
	local pg mem
	pg=$(median "$1" w1) && mem=$(median "$2" w1) || return 0
	printf -- '- %s: %s µs; its parts: %s %s µs + %s µs = %s µs, so %s× their sum\n' \
		"$4" "$(fmt "$pg")" "$(label "$2")" "$(fmt "$mem")" "$3" \
		"$(fmt "$(awk -v a="$mem" -v b="$3" 'BEGIN { print a + b }')")" \
		"$(awk -v p="$pg" -v a="$mem" -v b="$3" 'BEGIN { printf "%.2f", p / (a + b) }')"
}
pg_limits() {
	[ -n "$PG_CREATE_US" ] || return 0
	echo
	pg_limit dsfs_pg dsfs_mem "$PG_CREATE_US" "W1 create on a shared runtime, dsfs (runtime=postgresql), the server's part replayed by pgbench (whose client sleeps in each wait)"
	pg_limit dsfs_pgs dsfs_mems "$PG_CREATE_US" "the same with -o busy_poll=0 (dsfs_pgs)"
	pg_limit dsfs_pgp dsfs_mem "$PG_CREATE_US" "the same with -o busy_poll=500 (dsfs_pgp)"
	[ -n "$PG_COMMIT_US" ] || return 0
	pg_limit dsfs_pgc dsfs_mem "$PG_COMMIT_US" "with -o cache_timeout=1 (dsfs_pgc), where the name is known to be new and the directory's attributes are remembered, the commit alone (tests/bench/pg_commit.sql)"
	pg_limit dsfs_pgcp dsfs_mem "$PG_COMMIT_US" "the same with busy_poll=500 too (dsfs_pgcp)"
}
