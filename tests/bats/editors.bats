#!/usr/bin/env bats
# editors.bats - editors and tools save values as if the value had simply
# been written: vim (swap file, backup by rename, the 4913 probe), emacs
# (backup, auto-save and lock files), nano, sed -i, rsync, cp and python3
# leave no scratch file in the store, and a crash at any step of vim's
# save leaves the old value or the new one.

load helpers

setup()
{
	setup_store
	OLD='{"volume": 15, "theme": "dark"}'
	NEW='{"volume": 5, "theme": "dark"}'
}

teardown()
{
	teardown_store
}

# vim_edit FILE EX-COMMANDS...: runs real vim on FILE, without a vimrc,
# with a swap file and backups on ('backupskip' emptied: its default skips
# /tmp, where the tests live), running the ex commands and saving.
vim_edit()
{
	local f=$1 c
	shift
	local -a cmds=()
	for c in "$@"; do cmds+=(-c "$c"); done
	HOME=$T timeout "$OP_TIMEOUT" vim -u NONE -i NONE -N -es \
		-c 'set swapfile backup writebackup backupskip=' \
		"${cmds[@]}" -c wq "$f" </dev/null
}

# The entries the runtime layer holds under kv/, one a line, sorted.
runtime_names()
{
	(cd "$MNT/runtime/kv" && find . -mindepth 1 | sort)
}

@test "vim saves with swap and backup files and leaves the store clean" {
	mount_dsfs
	mkdir "$MNT/kv/app"
	echo "$OLD" >"$MNT/kv/app/settings"
	vim_edit "$MNT/kv/app/settings" 's/15/5/'
	assert_content "$MNT/kv/app/settings" "$NEW"$'\n'
	# 'backup' keeps NAME~ beside the file while mounted; it lives in
	# memory only, was never validated, and is never in the store.
	assert_content "$MNT/kv/app/settings~" "$OLD"$'\n'
	[ "$(runtime_names)" = $'./app\n./app/settings' ]
	[ ! -e "$MNT/kv/app/.settings.swp" ]
	[ ! -e "$MNT/kv/app/4913" ]
	# Without 'backup' (Debian's default: writebackup only) nothing at
	# all is left, and a second vim finds no swap file to warn about.
	rm "$MNT/kv/app/settings~"
	HOME=$T run timeout "$OP_TIMEOUT" vim -u NONE -i NONE -N -es \
		-c 'set swapfile nobackup writebackup backupskip=' \
		-c 's/5/7/' -c wq "$MNT/kv/app/settings" </dev/null
	[ "$status" -eq 0 ]
	[[ "$output" != *ATTENTION* ]]
	[ "$(ls1 "$MNT/kv/app")" = settings ]
	assert_content "$MNT/kv/app/settings" '{"volume": 7, "theme": "dark"}'$'\n'
	remount_dsfs
	[ "$(ls1 "$MNT/kv/app")" = settings ]
	assert_content "$MNT/kv/app/settings" '{"volume": 7, "theme": "dark"}'$'\n'
}

@test "vim: a save that breaks the JSON is refused and the value stays" {
	mount_dsfs
	echo "$OLD" >"$MNT/kv/settings"
	run vim_edit "$MNT/kv/settings" 's/}//'
	[ "$status" -ne 0 ]
	assert_content "$MNT/kv/settings" "$OLD"$'\n'
	[ "$(runtime_names)" = ./settings ]
	remount_dsfs
	assert_content "$MNT/kv/settings" "$OLD"$'\n'
	[ "$(ls1 "$MNT/kv")" = settings ]
}

@test "scratch names hold any bytes, in memory only, and are listed" {
	mount_dsfs
	mkdir "$MNT/kv/d"
	head -c 3000 /dev/urandom >"$MNT/kv/d/.x.swp"
	printf 'not json' >"$MNT/kv/d/x~"
	printf '#' >"$MNT/kv/d/#x#"
	: >"$MNT/kv/d/4913"
	[ "$(ls1 "$MNT/kv/d")" = $'#x#\n.x.swp\n4913\nx~' ]
	[ "$(getfattr --only-values -n user.dsfs.layer "$MNT/kv/d/x~")" = ephemeral ]
	# Renaming a scratch file over an entry validates it ...
	assert_errno rename "$MNT/kv/d/x~" "$MNT/kv/d/x" EINVAL
	[ ! -e "$MNT/kv/d/x" ]
	# ... and commits it to the runtime layer when it is JSON.
	echo '[1]' >"$MNT/kv/d/.x.swp"
	assert_errno rename "$MNT/kv/d/.x.swp" "$MNT/kv/d/x" OK
	[ "$(getfattr --only-values -n user.dsfs.layer "$MNT/kv/d/x")" = runtime ]
	assert_content "$MNT/kv/d/x" $'[1]\n'
	# The devices/ view has scratch names too.
	mkdir "$MNT/devices/cam"
	printf '\x00\x01' >"$MNT/devices/cam/.cfg.swp"
	remount_dsfs
	[ "$(ls1 "$MNT/kv/d")" = x ]
	[ "$(ls1 "$MNT/devices/cam")" = "" ]
}

@test "-o scratch= sets the scratch names" {
	mount_dsfs -o 'scratch=*.tmp:~*'
	printf 'junk' >"$MNT/kv/a.tmp"
	printf 'junk' >"$MNT/kv/~b"
	assert_errno write "$MNT/kv/x~" junk EINVAL
	# An empty list: no scratch names at all.
	remount_dsfs -o scratch=
	assert_errno write "$MNT/kv/.a.swp" junk EINVAL
}

# crash_at STEP: the steps of vim's save (swap file, 4913 probe, rename to
# NAME~, new NAME written but not closed, closed, scratch files removed)
# are run up to STEP by python, which then holds its files open while the
# daemon is killed.  After a new mount kv/settings is the old value or the
# new one, and no scratch file is left.
crash_at()
{
	local step=$1 pid
	mount_dsfs
	echo "$OLD" >"$MNT/kv/settings"
	"$PYTHON" - "$MNT/kv" "$step" "$NEW" >"$T/py.out" 2>&1 <<'EOF' &
import os, sys, time
d, step, new = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode() + b"\n"
p = lambda n: os.path.join(d, n)
keep = []
def run():
    sw = os.open(p(".settings.swp"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    keep.append(sw)
    os.pwrite(sw, b"b0VIM 9.0\0" + os.urandom(200), 0)
    os.fsync(sw)
    if step == 1: return
    fd = os.open(p("4913"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    if step == 2: keep.append(fd); return
    os.close(fd); os.unlink(p("4913"))
    os.rename(p("settings"), p("settings~"))
    if step == 3: return
    fd = os.open(p("settings"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, new[:10])
    if step == 4: keep.append(fd); return
    os.write(fd, new[10:]); os.fsync(fd); os.close(fd)
    if step == 5: return
    os.unlink(p("settings~"))
run()
print("ready", flush=True)
time.sleep(60)
EOF
	pid=$!
	for _ in $(seq 100); do
		grep -q ready "$T/py.out" && break
		sleep 0.1
	done
	grep -q ready "$T/py.out" || fail "step $step: $(cat "$T/py.out")" || return 1
	kill_daemon
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	remount_dsfs
	run cat "$MNT/kv/settings"
	[ "$output" = "$OLD" ] || [ "$output" = "$NEW" ] ||
		fail "step $step: kv/settings is '$output'" || return 1
	[ "$(ls1 "$MNT/kv")" = settings ] ||
		fail "step $step: kv/ holds $(ls1 "$MNT/kv")" || return 1
	[ "$step" -lt 5 ] || [ "$output" = "$NEW" ] ||
		fail "step $step: a closed value was lost" || return 1
	unmount_dsfs
}

@test "a crash at any step of vim's save keeps the old value or the new one" {
	local step
	for step in 1 2 3 4 5 6; do
		crash_at "$step"
	done
}

@test "nano saves a value and leaves nothing behind" {
	command -v nano >/dev/null || fail "nano is missing (apt-get install nano)"
	mount_dsfs
	echo "$OLD" >"$MNT/kv/settings"
	# nano needs a terminal: python gives it one, types a line at the
	# top, writes the file out (^O, Enter) and quits (^X).
	HOME=$T TERM=xterm tmo "$PYTHON" - "$MNT/kv/settings" <<'EOF'
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp("nano", ["nano", "--ignorercfile", sys.argv[1]])
def send(b):
    time.sleep(0.5); os.write(fd, b)
send(b"\x0b")                  # ^K: cut the line
send(b'["edited"]')
send(b"\x0f"); send(b"\r")     # ^O, Enter: write out
send(b"\x18")                  # ^X: exit
deadline = time.time() + 20
while time.time() < deadline:
    try:
        os.read(fd, 65536)
    except OSError:
        break
_, st = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(st))
EOF
	assert_content "$MNT/kv/settings" $'["edited"]\n'
	[ "$(runtime_names)" = ./settings ]
	[ "$(ls1 "$MNT/kv")" = settings ]
}

# emacs_edit FILE FROM TO: real emacs, in batch mode, with no init file,
# replaces FROM by TO in FILE and saves, the way an interactive emacs
# does: backups on (NAME renamed to NAME~; 'backup-enable-predicate'
# accepts /tmp, which emacs skips by default and the tests live in),
# auto-save on (#NAME# written before the save, as the idle timer would,
# and deleted by it), lock files on (.#NAME, a symbolic link: dsfs
# refuses it and emacs 28 edits on without the lock).  Prints what emacs
# saw along the way.
emacs_edit()
{
	cat >"$T/edit.el" <<'EOF'
(setq make-backup-files t backup-by-copying nil create-lockfiles t
      auto-save-default t delete-auto-save-files t
      backup-enable-predicate (lambda (_name) t))
(let ((file (nth 0 command-line-args-left))
      (from (nth 1 command-line-args-left))
      (to (nth 2 command-line-args-left)))
  (setq command-line-args-left nil)
  (find-file file)
  (auto-save-mode 1)
  (goto-char (point-min))
  (search-forward from)
  (replace-match to t t)
  (do-auto-save t)
  (princ (format "autosave: %s %S\n"
                 (file-name-nondirectory buffer-auto-save-file-name)
                 (file-exists-p buffer-auto-save-file-name)))
  (save-buffer)
  (princ (format "saved; autosave left: %S\n"
                 (file-exists-p buffer-auto-save-file-name)))
  (kill-emacs 0))
EOF
	HOME=$T tmo emacs -Q --batch -l "$T/edit.el" "$@" </dev/null 3>&- 4>&-
}

@test "emacs saves with backup, auto-save and lock files on, leaving nothing behind" {
	command -v emacs >/dev/null ||
		fail "FATAL: emacs is missing (./bootstrap --deps installs emacs-nox)"
	mount_dsfs
	mkdir "$MNT/kv/app"
	echo "$OLD" >"$MNT/kv/app/settings"
	run emacs_edit "$MNT/kv/app/settings" 15 5
	[ "$status" -eq 0 ] || fail "$output"
	# #settings# was written into the mount before the save, and gone
	# after it.
	[[ "$output" == *"autosave: #settings# t"* ]] || fail "$output"
	[[ "$output" == *"saved; autosave left: nil"* ]] || fail "$output"
	assert_content "$MNT/kv/app/settings" "$NEW"$'\n'
	# The backup (the old NAME, renamed) stays beside it while mounted,
	# in memory only, never in the store.
	assert_content "$MNT/kv/app/settings~" "$OLD"$'\n'
	[ ! -e "$MNT/kv/app/#settings#" ]
	[ ! -L "$MNT/kv/app/.#settings" ]
	[ "$(runtime_names)" = $'./app\n./app/settings' ]
	# A second edit, then a new mount: the value, and nothing else.
	run emacs_edit "$MNT/kv/app/settings" '"dark"' '"light"'
	[ "$status" -eq 0 ] || fail "$output"
	unmount_dsfs
	mount_dsfs
	assert_content "$MNT/kv/app/settings" '{"volume": 5, "theme": "light"}'$'\n'
	[ "$(ls -A "$MNT/kv/app")" = settings ]
	# A save that breaks the JSON fails, and the value stays.
	run emacs_edit "$MNT/kv/app/settings" '"light"' '"light'
	[ "$status" -ne 0 ] || fail "emacs saved invalid JSON: $output"
	assert_content "$MNT/kv/app/settings" '{"volume": 5, "theme": "light"}'$'\n'
	[ ! -e "$MNT/runtime/kv/app/#settings#" ]
}

@test "sed -i, rsync, cp and python3 rewrite values and leave nothing behind" {
	mount_dsfs
	mkdir "$MNT/kv/app" "$T/src"
	echo "$OLD" >"$MNT/kv/app/settings"
	tmo sed -i 's/15/5/' "$MNT/kv/app/settings"
	assert_content "$MNT/kv/app/settings" "$NEW"$'\n'
	echo '[1, 2]' >"$T/src/list"
	echo '"x"' >"$T/src/settings"
	tmo rsync -a "$T/src/" "$MNT/kv/app/"
	assert_content "$MNT/kv/app/settings" $'"x"\n'
	tmo cp "$T/src/list" "$MNT/kv/app/copied"
	# python3: in place, and through a temporary file and os.replace().
	tmo "$PYTHON" - "$MNT/kv/app" <<'EOF'
import json, os, sys, tempfile
d = sys.argv[1]
with open(os.path.join(d, "list"), "w") as f:
    json.dump([3], f)
fd, tmp = tempfile.mkstemp(dir=d)
with os.fdopen(fd, "w") as f:
    json.dump({"k": True}, f)
os.replace(tmp, os.path.join(d, "settings"))
EOF
	assert_content "$MNT/kv/app/list" '[3]'
	assert_content "$MNT/kv/app/settings" '{"k": true}'
	[ "$(ls1 "$MNT/kv/app")" = $'copied\nlist\nsettings' ]
	[ "$(runtime_names)" = $'./app\n./app/copied\n./app/list\n./app/settings' ]
}

@test "mkfactory leaves editors' scratch files out of the image" {
	mkdir -p "$T/src/kv/a" "$T/src/devices/d"
	echo 1 >"$T/src/kv/a/x"
	printf 'junk' >"$T/src/kv/a/.x.swp"
	printf 'junk' >"$T/src/kv/a/x~"
	printf 'junk' >"$T/src/devices/d/4913"
	echo 2 >"$T/src/devices/d/y"
	make_factory "$T/src"
	mount_dsfs
	[ "$(ls1 "$MNT/factory/kv/a")" = x ]
	[ "$(ls1 "$MNT/devices/d")" = y ]
}
