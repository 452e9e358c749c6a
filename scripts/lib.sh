# shellcheck shell=bash
# Functions the scripts share. Source it (it sets nothing else):
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# now_ms: the wall clock in milliseconds (bash's EPOCHREALTIME, no fork).
now_ms() { local t=${EPOCHREALTIME//[!0-9]/}; echo $((t / 1000)); }

# fmt_ms <ms>: a duration as seconds with one decimal, "12.3s".
fmt_ms() { printf '%d.%01ds' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# fmt_ms_min <ms>: a duration as minutes and seconds, "5m02.3s".
fmt_ms_min() { printf '%dm%02d.%01ds' $(($1 / 60000)) $(($1 % 60000 / 1000)) $(($1 % 1000 / 100)); }

# busybox_rootfs <dir>: a minimal root filesystem in dir for an OCI image: Debian's static
# busybox (package busybox-static) with a link for every applet, /tmp (1777), /root, and
# /etc/passwd and /etc/group with root and nobody.
busybox_rootfs() {
	local r=$1 a
	mkdir -p "$r"/{bin,tmp,etc,root}
	chmod 1777 "$r/tmp"
	cp /bin/busybox "$r/bin/busybox"
	for a in $(/bin/busybox --list-full); do
		[ "$a" = bin/busybox ] || { mkdir -p "$r/$(dirname "$a")" && ln -sf /bin/busybox "$r/$a"; }
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\n' >"$r/etc/group"
}
