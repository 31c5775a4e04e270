#!/usr/bin/env bash
# Runs the project's compiled Go test binaries as root on Debian 12's own
# kernel (6.1) booted under qemu with software emulation (TCG; no KVM needed).
# Tests run 10-30x slower in there; binaries are static (CGO_ENABLED=0).
#
#   scripts/test-kernels.sh              every package in TEST_KERNEL_PKGS
#   scripts/test-kernels.sh exec BIN ARGS...
#                                        `go test -exec` wrapper: one VM runs
#                                        one test binary, e.g.
#     go test -exec "$PWD/scripts/test-kernels.sh exec" -run TestX ./pkg/datapath
#   scripts/test-kernels.sh vm-image DIR
#                                        DIR/vmlinuz and DIR/initrd.cpio: a VM
#                                        that runs the guest agent test/vmguest
#                                        (test/e2e/vm_test.go boots it)
#
# The VM: the kernel and its modules come from Debian's linux-image package
# (resolved through TEST_KERNEL_META, unpacked once into TEST_KERNEL_CACHE);
# the initramfs holds cmd/qemu-init as /init, busybox-static, iproute2,
# ethtool, nsenter/unshare with their shared libraries, the modules in
# TEST_KERNEL_MODULES (with their dependencies) and the static test binaries.
# ttyS0 is the kernel console, ttyS1 carries the tests' output framed by
# "@@uplinkd-qemu begin/end NAME exit=N" lines that give the exit codes.
# Inside, tests see UPLINKD_TEST_KERNEL=6.1-qemu (major.minor of the kernel).
#
# Environment (all optional):
#   TEST_KERNEL_PKGS     go package patterns to test (default below)
#   TEST_KERNEL_MODE     all: one VM runs every binary (default);
#                        per-package: go test -p 1 -exec, one VM per package
#   TEST_KERNEL_RUN      -test.run pattern for every binary
#   TEST_KERNEL_TIMEOUT  each binary's -test.timeout (default 10m)
#   TEST_KERNEL_VM_TIMEOUT  the whole VM's limit (default 25m)
#   TEST_KERNEL_META     linux-image metapackage (default linux-image-cloud-amd64)
#   TEST_KERNEL_CACHE    unpacked kernels (default /var/cache/uplinkd-test-kernels)
#   TEST_KERNEL_OUT      logs of the last run (default out/test-kernels in the repo)
#   TEST_KERNEL_MODULES  modules to load (default below; dependencies are added)
#   TEST_KERNEL_VM_MODULES  the same for vm-image (default virtio_pci virtio_net)
#   TEST_KERNEL_MEM, TEST_KERNEL_SMP, TEST_KERNEL_APPEND (extra kernel arguments)
#   UPLINKD_*            passed into the VM (UPLINKD_BIN is replaced by the
#                        static uplinkd/uplinkctl built for it)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/scripts/test-kernels.sh"
GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
export CGO_ENABLED=0 GOFLAGS=${GOFLAGS:--mod=mod}

PKGS=${TEST_KERNEL_PKGS:-./pkg/datapath/... ./pkg/hostport ./pkg/linkwatch ./pkg/announce ./pkg/control ./pkg/failover ./pkg/config ./test/bench/benchbpf ./test/e2e}
MODE=${TEST_KERNEL_MODE:-all}
TIMEOUT=${TEST_KERNEL_TIMEOUT:-10m}
VM_TIMEOUT=${TEST_KERNEL_VM_TIMEOUT:-25m}
META=${TEST_KERNEL_META:-linux-image-cloud-amd64}
CACHE=${TEST_KERNEL_CACHE:-/var/cache/uplinkd-test-kernels}
OUT=${TEST_KERNEL_OUT:-$ROOT/out/test-kernels}
MODULES=${TEST_KERNEL_MODULES:-veth sch_ingress cls_bpf tun bridge}
# Tests that measure the machine rather than the kernel and fail for want
# of CPU under software emulation (10-30x slower). They are not run in
# the VM; the summary lists them. TEST_KERNEL_SKIP (a -test.skip pattern)
# replaces the list; TEST_KERNEL_SKIP= runs everything.
EMULATION_SKIPS=(
	'TestPollCost: asserts the CPU cost of 1 ms carrier polling; a sysfs read costs ~450 us under TCG'
	'TestPlannedSwitchLosesNothing: under TCG the senders reach ~3.5 kpps of 50 and the emulated CPU drops frames (veth ring full) unrelated to the switches'
	'TestPacketSenderPacing: asserts the afpacket engine paces 100-400 kpps; under TCG a user-space sender reaches ~40 kpps'
	'TestFlatOutRate: asserts each traffic engine sends flat out at a real CPU'"'"'s rate; under TCG the afpacket engine sends ~80 kpps'
)
default_skip=$(printf '%s\n' "${EMULATION_SKIPS[@]}" | sed 's/:.*//' | paste -sd'|')
SKIP=${TEST_KERNEL_SKIP-^($default_skip)\$}
MEM=${TEST_KERNEL_MEM:-2G}
SMP=${TEST_KERNEL_SMP:-2}
MARK='@@uplinkd-qemu'

log() { echo "test-kernels: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# --- host tools ---------------------------------------------------------

install_deps() {
	local need=()
	command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
	dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
	command -v cpio >/dev/null || need+=(cpio)
	command -v depmod >/dev/null && command -v modprobe >/dev/null || need+=(kmod)
	command -v ip >/dev/null || need+=(iproute2)
	command -v ethtool >/dev/null || need+=(ethtool)
	command -v ldconfig >/dev/null || need+=(libc-bin)
	if ((${#need[@]})); then
		[[ $(id -u) -eq 0 ]] || die "missing ${need[*]}; run as root to install them"
		log "installing ${need[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
}

# --- kernel -------------------------------------------------------------

# kernel_package prints the ABI-versioned package the metapackage points at.
kernel_package() {
	apt-cache depends "$META" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

# fetch_kernel sets KDIR (holding vmlinuz and lib/modules/KVER) and KVER.
fetch_kernel() {
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock 9
	local pkg ver
	pkg=$(kernel_package)
	if [[ -z $pkg ]]; then
		apt-get update -qq
		pkg=$(kernel_package)
	fi
	[[ -n $pkg ]] || die "cannot resolve $META to a linux-image package"
	ver=$(apt-cache policy "$pkg" | awk '$1 == "Candidate:" { print $2 }')
	KDIR="$CACHE/${pkg}_$ver"
	if [[ ! -e $KDIR/ready ]]; then
		log "fetching $pkg $ver into $KDIR"
		rm -rf "$KDIR"
		mkdir -p "$KDIR/deb"
		# A stale package list names a version the mirror no longer has.
		if ! (cd "$KDIR/deb" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver"); then
			apt-get update -qq
			ver=$(apt-cache policy "$pkg" | awk '$1 == "Candidate:" { print $2 }')
			(cd "$KDIR/deb" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver") ||
				die "apt-get download $pkg=$ver failed"
		fi
		dpkg-deb -x "$KDIR"/deb/*.deb "$KDIR/root"
		rm -rf "$KDIR/deb"
		KVER=$(ls "$KDIR/root/lib/modules")
		depmod -b "$KDIR/root" "$KVER"
		cp "$KDIR/root/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
		echo "$pkg $ver $KVER" >"$KDIR/ready"
		# Older ABIs of the same flavour (~120 MB each) are not needed again.
		local flavour old
		flavour=$(sed -E 's/^linux-image-[0-9.]+-[0-9]+-//' <<<"$pkg")
		for old in "$CACHE"/linux-image-*; do
			[[ ${old##*/} =~ ^linux-image-[0-9.]+-[0-9]+-${flavour}_ && $old != "$KDIR" ]] && rm -rf "$old"
		done
	fi
	KVER=$(awk '{ print $3 }' "$KDIR/ready")
	flock -u 9
}

# --- initramfs ----------------------------------------------------------

# copy_with_libs copies host programs and the shared libraries ldd lists.
copy_with_libs() { # copy_with_libs DEST PROGRAM...
	local dest=$1 prog lib
	shift
	for prog; do
		install -D -m 0755 "$(readlink -f "$prog")" "$dest$prog"
		for lib in $(ldd "$prog" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
			[[ -e $dest$lib ]] || install -D -m 0755 "$(readlink -f "$lib")" "$dest$lib"
		done
	done
}

# build_base writes $1/base.cpio: init, tools, modules; sets MODULE_PATHS.
build_base() {
	local work=$1 base=$1/base mod line ko
	rm -rf "$base"
	mkdir -p "$base"/{bin,sbin,usr/bin,usr/sbin,etc,root,proc,sys,dev,tmp,run,var,lib64}
	ln -s ../run "$base/var/run"
	(cd "$ROOT" && "$GO" build -trimpath -o "$base/init" ./cmd/qemu-init)
	install -m 0755 /bin/busybox "$base/bin/busybox"
	for a in $(/bin/busybox --list); do
		[[ -e $base/bin/$a ]] || ln -s busybox "$base/bin/$a"
	done
	local tools=()
	for t in ip tc bridge ethtool nsenter unshare setpriv; do
		tools+=("$(command -v "$t")")
	done
	copy_with_libs "$base" "${tools[@]}"
	ldconfig -r "$base" 2>/dev/null || true
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$base/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$base/etc/group"
	printf '127.0.0.1 localhost\n::1 localhost\n' >"$base/etc/hosts"
	# modprobe lists a module's dependencies first (from modules.dep).
	MODULE_PATHS=()
	local deps
	for mod in $MODULES; do
		deps=$(modprobe -d "$KDIR/root" -S "$KVER" --show-depends "$mod") || die "module $mod: not found for $KVER"
		while read -r line; do
			[[ $line == insmod\ * ]] || continue # "builtin NAME" needs nothing
			ko=$(awk '{ print $2 }' <<<"$line")
			ko=${ko#"$KDIR/root"}
			[[ " ${MODULE_PATHS[*]} " == *" $ko "* ]] && continue
			install -D -m 0644 "$KDIR/root$ko" "$base$ko"
			MODULE_PATHS+=("$ko")
		done <<<"$deps"
	done
	(cd "$base" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) >"$work/base.cpio"
}

# --- one VM ---------------------------------------------------------------

# json_array prints its arguments as a JSON array of strings.
json_array() {
	local sep='' s
	printf '['
	for s; do
		s=${s//\\/\\\\}
		s=${s//\"/\\\"}
		printf '%s"%s"' "$sep" "$s"
		sep=,
	done
	printf ']'
}

# guest_env prints the UPLINKD_* variables the VM gets, one a line.
guest_env() {
	local v
	while IFS='=' read -r v _; do
		case $v in
		UPLINKD_BIN | UPLINKD_TEST_KERNEL) ;;
		UPLINKD_*) printf '%s=%s\n' "$v" "${!v}" ;;
		esac
	done < <(env)
	[[ -n ${GUEST_UPLINKD_BIN:-} ]] && echo "UPLINKD_BIN=$GUEST_UPLINKD_BIN"
	return 0
}

# write_initrd RUNDIR FILE: writes the manifest of RUNDIR/etc/uplinkd-test/tests
# and FILE, the base initramfs with RUNDIR on top.
write_initrd() {
	local run=$1 file=$2 tests envs=()
	mapfile -t envs < <(guest_env)
	tests=$(paste -sd, "$run/etc/uplinkd-test/tests")
	{
		printf '{"results":"/dev/ttyS1","modules":'
		json_array "${MODULE_PATHS[@]}"
		printf ',"env":'
		json_array "${envs[@]}"
		printf ',"tests":[%s]}\n' "$tests"
	} >"$run/etc/uplinkd-test/manifest.json"
	(cd "$run" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) >"$file.run"
	cat "$BASE_CPIO" "$file.run" >"$file"
	rm -f "$file.run"
}

# boot RUNDIR OUTDIR: RUNDIR holds the run's files and etc/uplinkd-test/tests
# (one JSON test object a line); boots the VM and leaves console.log and
# results.log in OUTDIR. LIVE (a command) gets the results as they arrive.
boot() {
	local run=$1 out=$2
	mkdir -p "$out"
	write_initrd "$run" "$out/initrd.cpio"
	: >"$out/console.log"
	: >"$out/results.log"
	local append="console=ttyS0 loglevel=5 panic=-1 ${TEST_KERNEL_APPEND:-}"
	timeout --kill-after=10 "$VM_TIMEOUT" qemu-system-x86_64 \
		-accel tcg -cpu max -m "$MEM" -smp "$SMP" \
		-nodefaults -no-user-config -display none -no-reboot \
		-kernel "$KDIR/vmlinuz" -initrd "$out/initrd.cpio" -append "$append" \
		-serial "file:$out/console.log" -serial "file:$out/results.log" \
		</dev/null >"$out/qemu.log" 2>&1 &
	local qpid=$!
	tail -n +1 -F --pid="$qpid" "$out/results.log" 2>/dev/null | "$LIVE"
	local rc=0
	wait "$qpid" || rc=$?
	rm -f "$out/initrd.cpio"
	if ((rc == 124 || rc == 137)); then
		log "the VM ran longer than $VM_TIMEOUT and was killed"
	elif ((rc != 0)); then
		log "qemu exited with $rc:"
		cat "$out/qemu.log" >&2
	fi
	# Kernel complaints are worth seeing even when every test passed.
	if grep -qE 'BUG:|WARNING:|Oops|Kernel panic|Call Trace' "$out/console.log"; then
		log "the guest kernel complained (full log: $out/console.log):"
		grep -E -A3 'BUG:|WARNING:|Oops|Kernel panic' "$out/console.log" | head -60 >&2
	fi
	if grep -q "^$MARK setup-error" "$out/results.log" "$out/console.log"; then
		grep -h "^$MARK setup-error" "$out/results.log" "$out/console.log" >&2
	fi
	if ! grep -q "^$MARK done" "$out/results.log"; then
		log "the VM did not finish; last console lines:"
		tail -20 "$out/console.log" >&2
	fi
}

# test_entry NAME BIN DIR ARGS... prints one manifest test object.
test_entry() {
	local name=$1 bin=$2 dir=$3 secs
	shift 3
	secs=$(timeout_seconds "$TIMEOUT")
	printf '{"name":"%s","bin":"%s","dir":"%s","timeout_seconds":%d,"args":%s}\n' \
		"$name" "$bin" "$dir" "$secs" "$(json_array "$@")"
}

timeout_seconds() { # 90s, 15m, 1h, 1h30m → seconds (for the hard limit)
	local d=$1 total=0 n u
	while [[ $d =~ ^([0-9]+)([hms])(.*)$ ]]; do
		n=${BASH_REMATCH[1]} u=${BASH_REMATCH[2]} d=${BASH_REMATCH[3]}
		case $u in h) total=$((total + n * 3600)) ;; m) total=$((total + n * 60)) ;; s) total=$((total + n)) ;; esac
	done
	echo "$total"
}

# add_testdata copies a package's testdata (tests open it relative to their
# directory, which in the VM is /src/<package>).
add_testdata() { # add_testdata RUNDIR SRCDIR GUESTDIR
	mkdir -p "$1$3"
	[[ -d $2/testdata ]] && cp -a "$2/testdata" "$1$3/"
	return 0
}

# add_deploy copies deploy/ for the end-to-end tests, which read the
# service files they check (../../deploy from /src/test/e2e).
add_deploy() { # add_deploy RUNDIR REL
	[[ $2 == test/e2e && ! -d $1/src/deploy ]] || return 0
	mkdir -p "$1/src" && cp -a "$ROOT/deploy" "$1/src/"
}

# build_uplinkd puts static uplinkd and uplinkctl into RUNDIR/opt/uplinkd/bin.
build_uplinkd() {
	(cd "$ROOT" && "$GO" build -trimpath -o "$1/opt/uplinkd/bin/" ./cmd/uplinkd ./cmd/uplinkctl)
	GUEST_UPLINKD_BIN=/opt/uplinkd/bin
}

prepare() { # prepare WORKDIR: host tools, kernel, base initramfs
	[[ $(id -u) -eq 0 ]] || die "needs root (apt, the cache, and the tests expect root)"
	install_deps
	fetch_kernel
	build_base "$1"
	BASE_CPIO=$1/base.cpio
	log "kernel $KVER ($KDIR), modules: ${MODULE_PATHS[*]##*/}"
}

# --- go test -exec wrapper ----------------------------------------------------

# exec_main BIN ARGS...: go test runs this in the package's directory.
exec_main() {
	local bin=$1 name rel
	shift
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/uplinkd-test-kernels.XXXXXX")
	trap 'rm -rf "$WORK"' EXIT
	local work=$WORK
	if [[ -n ${TEST_KERNEL_STATE:-} ]]; then
		# shellcheck source=/dev/null
		source "$TEST_KERNEL_STATE" # set by the per-package run: no setup per package
	else
		prepare "$work" >/dev/null
	fi
	rel=${PWD#"$ROOT"/}
	[[ $rel == "$PWD" ]] && rel=${PWD##*/} # a package outside this tree
	name=./$rel
	mkdir -p "$work/run/etc/uplinkd-test" "$work/run/tests"
	install -m 0755 "$bin" "$work/run/tests/test"
	add_testdata "$work/run" "$PWD" "/src/$rel"
	add_deploy "$work/run" "$rel"
	if [[ -n ${UPLINKD_BIN:-} ]]; then
		install -D -m 0755 -t "$work/run/opt/uplinkd/bin" "$UPLINKD_BIN"/uplinkd "$UPLINKD_BIN"/uplinkctl
		GUEST_UPLINKD_BIN=/opt/uplinkd/bin
	fi
	local args=("$@")
	# As in a whole run, unless the caller chose (go test -skip); said, so
	# that a -run of one of them does not pass as "no tests to run".
	if [[ -n $SKIP && "$*" != *-test.skip* ]]; then
		args+=("-test.skip=$SKIP")
		log "skipping the emulation-bound tests ($SKIP); TEST_KERNEL_SKIP= runs them"
	fi
	test_entry "$name" /tests/test "/src/$rel" "${args[@]}" >"$work/run/etc/uplinkd-test/tests"
	LIVE=strip_markers
	local out=${TEST_KERNEL_EXEC_OUT:-$work/out}
	boot "$work/run" "$out"
	local code
	code=$(awk -v m="$MARK" '$1 == m && $2 == "end" { sub("exit=", "", $4); print $4 }' "$out/results.log")
	exit "${code:-1}"
}

strip_markers() { grep --line-buffered -v "^$MARK" || true; }

# --- the whole run --------------------------------------------------------------

# show prints the results as they arrive, without the === lines of -test.v.
show() {
	awk -v m="$MARK" '
		{ sub(/\r$/, "") }
		$1 == m && $2 == "kernel" { print "=== guest kernel " $3 ", " $4; fflush(); next }
		$1 == m && $2 == "begin" { print "=== " $3 " (in the VM)"; fflush(); next }
		$1 == m && $2 == "end" { r = ($4 == "exit=0") ? "ok  " : "FAIL"; sub("seconds=", "", $5)
			printf "%s %s %ss (%s)\n", r, $3, $5, $4; fflush(); next }
		$1 == m { next }
		/^=== (RUN|PAUSE|CONT|NAME)/ || /^ +--- PASS/ { next }
		{ print; fflush() }'
}

# summary prints one line per package and every skipped test with its reason.
summary() { # summary RESULTS NAMES...
	local results=$1
	shift
	awk -v m="$MARK" -v names="$*" -v k="$KVER" '
		BEGIN { n = split(names, order, " ") }
		{ sub(/\r$/, "") }
		$1 == m && $2 == "begin" { cur = $3; seen[cur] = 1; next }
		$1 == m && $2 == "end" { code[$3] = substr($4, 6); secs[$3] = substr($5, 9); cur = ""; next }
		cur == "" { next }
		/^--- PASS/ { pass[cur]++ }
		/^--- FAIL/ { fail[cur]++ }
		/^--- SKIP/ { skip[cur]++ }
		# -test.v streams the message of t.Skip before the --- SKIP line.
		/^ *--- SKIP/ { why = prev; sub(/^ +/, "", why); skips = skips sprintf("  %-24s %-40s %s\n", cur, $3, why) }
		/^ *--- FAIL/ { fails = fails sprintf("  %-24s %s\n", cur, $3) }
		{ prev = $0 }
		END {
			printf "\n%-26s %-6s %8s %5s %5s %5s\n", "package (" k ")", "result", "seconds", "pass", "fail", "skip"
			for (i = 1; i <= n; i++) {
				p = order[i]
				r = !(p in seen) ? "NOTRUN" : !(p in code) ? "CRASH" : code[p] == 0 ? "ok" : "FAIL"
				printf "%-26s %-6s %8s %5d %5d %5d\n", p, r, secs[p], pass[p], fail[p], skip[p]
			}
			if (fails != "") printf "\nfailed tests:\n%s", fails
			if (skips != "") printf "\nskipped tests (their own t.Skip):\n%s", skips
		}' "$results"
}

# all_passed RESULTS NAMES...: every package ended, with exit=0.
all_passed() {
	local results=$1
	shift
	awk -v m="$MARK" -v names="$*" '
		{ sub(/\r$/, "") }
		$1 == m && $2 == "end" && $4 == "exit=0" { ok[$3] = 1 }
		END { n = split(names, want, " "); for (i = 1; i <= n; i++) if (!(want[i] in ok)) exit 1 }' "$results"
}

main_all() {
	local start=$SECONDS
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/uplinkd-test-kernels.XXXXXX")
	trap 'rm -rf "$WORK"' EXIT
	local work=$WORK
	prepare "$work"
	log "setup took $((SECONDS - start))s"
	mkdir -p "$work/run/etc/uplinkd-test" "$work/run/tests"
	mkdir -p "$OUT"
	rm -f "$OUT"/{console,results,qemu}.log "$OUT/summary.txt"

	local pkgs=() names=() ip dir rel name file args=(-test.v -test.count=1 "-test.timeout=$TIMEOUT")
	[[ -n ${TEST_KERNEL_RUN:-} ]] && args+=("-test.run=$TEST_KERNEL_RUN")
	[[ -n $SKIP ]] && args+=("-test.skip=$SKIP")
	local module
	module=$(cd "$ROOT" && "$GO" list -m)
	# shellcheck disable=SC2086 # PKGS is a list of patterns
	mapfile -t pkgs < <(cd "$ROOT" && "$GO" list -f '{{.ImportPath}} {{.Dir}}' $PKGS)
	((${#pkgs[@]})) || die "no packages match $PKGS"
	local build=$SECONDS
	for line in "${pkgs[@]}"; do
		read -r ip dir <<<"$line"
		rel=${ip#"$module"/}
		name=./$rel
		file=$work/run/tests/${rel//\//_}.test
		if [[ $MODE == all ]]; then
			(cd "$ROOT" && "$GO" test -c -o "$file" "$ip")
			if [[ ! -e $file ]]; then
				log "$name has no tests"
				continue
			fi
			add_testdata "$work/run" "$dir" "/src/$rel"
			test_entry "$name" "/tests/${file##*/}" "/src/$rel" "${args[@]}" >>"$work/run/etc/uplinkd-test/tests"
		fi
		names+=("$name")
		add_deploy "$work/run" "$rel"
		[[ $rel == test/e2e && -z ${GUEST_UPLINKD_BIN:-} ]] && build_uplinkd "$work/run"
	done
	[[ $MODE == all ]] && log "built ${#names[@]} test binaries in $((SECONDS - build))s"

	local failed=0 vm=$SECONDS
	if [[ $MODE == all ]]; then
		LIVE=show
		boot "$work/run" "$OUT"
		summary "$OUT/results.log" "${names[@]}" | tee "$OUT/summary.txt"
		all_passed "$OUT/results.log" "${names[@]}" || failed=1
	elif [[ $MODE == per-package ]]; then
		# The wrapper reuses this run's kernel and base initramfs.
		declare -p KDIR KVER BASE_CPIO MODULE_PATHS | sed 's/^declare /declare -g /' >"$work/state"
		[[ -n ${GUEST_UPLINKD_BIN:-} ]] && export UPLINKD_BIN=$work/run/opt/uplinkd/bin
		local vargs=(-v)
		[[ -n ${TEST_KERNEL_RUN:-} ]] && vargs+=(-run "$TEST_KERNEL_RUN")
		[[ -n $SKIP ]] && vargs+=(-skip "$SKIP")
		set +e
		# shellcheck disable=SC2086 # PKGS is a list of patterns
		(cd "$ROOT" && TEST_KERNEL_STATE=$work/state "$GO" test -p 1 -count=1 -timeout "$TIMEOUT" \
			-exec "$SELF exec" "${vargs[@]}" $PKGS 2>&1) | tee "$OUT/results.log" |
			grep --line-buffered -vE '^=== (RUN|PAUSE|CONT|NAME)'
		[[ ${PIPESTATUS[0]} -eq 0 ]] || failed=1
		set -e
	else
		die "TEST_KERNEL_MODE must be all or per-package, not $MODE"
	fi
	if [[ -n $SKIP ]]; then
		if [[ ${TEST_KERNEL_SKIP+set} ]]; then
			log "not run (TEST_KERNEL_SKIP): $SKIP"
		else
			log "not run in the VM (emulation, not the kernel; TEST_KERNEL_SKIP= runs them):"
			printf '  %s\n' "${EMULATION_SKIPS[@]}" >&2
		fi
	fi
	log "VM time $((SECONDS - vm))s, total $((SECONDS - start))s; logs in $OUT"
	if ((failed)); then
		log "FAIL on $KVER"
		exit 1
	fi
	log "PASS on $KVER"
}

# --- a VM for test/e2e/vm_test.go -----------------------------------------------

# vm_image_main DIR writes DIR/vmlinuz and DIR/initrd.cpio: Debian's kernel
# and an initramfs whose /init (cmd/qemu-init) loads virtio-net and runs the
# guest agent test/vmguest once (its settings come from the kernel command
# line; see there). DIR/kernel names the kernel release.
vm_image_main() {
	local dir=$1
	MODULES=${TEST_KERNEL_VM_MODULES:-virtio_pci virtio_net}
	TIMEOUT=2m # the agent's hard limit in the VM (the test bounds the VM)
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/uplinkd-test-kernels.XXXXXX")
	trap 'rm -rf "$WORK"' EXIT
	prepare "$WORK"
	mkdir -p "$dir" "$WORK/run/etc/uplinkd-test" "$WORK/run/tests"
	(cd "$ROOT" && "$GO" build -trimpath -o "$WORK/run/tests/vmguest" ./test/vmguest)
	test_entry vmguest /tests/vmguest / >"$WORK/run/etc/uplinkd-test/tests"
	write_initrd "$WORK/run" "$dir/initrd.cpio"
	cp "$KDIR/vmlinuz" "$dir/vmlinuz"
	echo "$KVER" >"$dir/kernel"
}

case ${1:-} in
vm-image)
	(($# == 2)) || die "usage: $0 vm-image DIR"
	vm_image_main "$2"
	;;
exec)
	shift
	(($#)) || die "usage: $0 exec TEST-BINARY [ARGS...]"
	exec_main "$@"
	;;
"") main_all ;;
*) die "usage: $0 [exec TEST-BINARY [ARGS...] | vm-image DIR]" ;;
esac
