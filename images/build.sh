#!/usr/bin/env bash
# Builds the ftvm guest image: Debian's cloud kernel plus an initramfs with busybox, the guest
# agent, the demo service, two unmodified third-party servers (busybox httpd on 8080, Debian's
# nginx on 8081) and their files.
#
#   images/build.sh --agent PATH --service PATH [--version STRING] [--out DIR]
#
# OUT (default /var/lib/ftvm/images/default) receives:
#   vmlinuz      the kernel, extracted from the linux-image-*-cloud-amd64 .deb (never installed)
#   initrd.img   zstd (or gzip) compressed cpio (newc); /init is documented in docs/image.md
#   image.env    FTVM_IMAGE_VERSION, FTVM_KERNEL_VERSION, FTVM_BUILT_AT (+ a few extras)
#   www/         a copy of what the guest's static servers serve from /srv/www
#
# Only Debian packages are fetched (the kernel and nginx .debs, cached under $FTVM_CACHE_DIR,
# default /var/cache/ftvm; never installed). The image is built in a temporary directory next to
# OUT and swapped in with one rename, so a failed or interrupted build leaves the previous image
# (or none) in place.
#
# Environment overrides: FTVM_KERNEL_PACKAGE (default: what linux-image-cloud-amd64 depends on),
# FTVM_KERNEL_DEB (use this .deb file instead of apt), FTVM_NGINX_DEB (likewise for nginx),
# FTVM_CACHE_DIR, FTVM_INITRD_COMPRESSION (zstd|gzip).
set -euo pipefail
umask 022

prog=images/build.sh
die() { echo "$prog: error: $*" >&2; exit 1; }
# No silent deaths under set -e: name the command that failed.
trap 'echo "$prog: error: command failed (line $LINENO, status $?): $BASH_COMMAND" >&2' ERR
note() { echo "$prog: $*" >&2; }

usage() {
  cat >&2 <<'EOF'
usage: images/build.sh --agent PATH --service PATH [--version STRING] [--out DIR]
  --agent PATH     the guest agent binary (installed as /bin/ftvm-agent)
  --service PATH   the demo service binary (installed as /bin/ftvm-demo-service)
  --version STR    image version, 1-31 chars of [A-Za-z0-9._+-] (default 1.0.0)
  --out DIR        output directory (default /var/lib/ftvm/images/default)
EOF
  exit "${1:-2}"
}

agent="" service="" version="1.0.0" out="/var/lib/ftvm/images/default"
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) [ $# -ge 2 ] || usage; agent=$2; shift 2 ;;
    --agent=*) agent=${1#*=}; shift ;;
    --service) [ $# -ge 2 ] || usage; service=$2; shift 2 ;;
    --service=*) service=${1#*=}; shift ;;
    --version) [ $# -ge 2 ] || usage; version=$2; shift 2 ;;
    --version=*) version=${1#*=}; shift ;;
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    -h|--help) usage 0 ;;
    *) echo "$prog: unknown argument: $1" >&2; usage ;;
  esac
done

# ---------------------------------------------------------------------------------------------
# Inputs

check_binary() { # option, path
  local option=$1 path=$2
  [ -n "$path" ] || die "$option PATH is required"
  [ -e "$path" ] || die "$option $path: no such file"
  [ -f "$path" ] || die "$option $path: not a regular file"
  [ -r "$path" ] || die "$option $path: not readable"
  [ -x "$path" ] || die "$option $path: not executable"
  head -c 4 "$path" | cmp -s - <(printf '\177ELF') || die "$option $path: not an ELF executable"
}
check_binary --agent "$agent"
check_binary --service "$service"
agent=$(realpath "$agent")
service=$(realpath "$service")

# The agent copies the version into a 32-byte NUL-padded channel field; keep it shell-safe too.
[[ "$version" =~ ^[A-Za-z0-9._+-]{1,31}$ ]] || die "--version '$version': use 1-31 characters of [A-Za-z0-9._+-]"
[ -n "$out" ] || die "--out must not be empty"
case "$out" in /) die "--out must not be /" ;; esac
out=$(realpath -m "$out")
# The build replaces OUT wholesale: refuse anything that is not an earlier image (or empty).
if [ -e "$out" ] || [ -L "$out" ]; then
  [ -d "$out" ] && [ ! -L "$out" ] || die "--out $out exists and is not a directory"
  if [ ! -f "$out/image.env" ] && [ -n "$(ls -A "$out")" ]; then
    die "--out $out is a non-empty directory without image.env: not an ftvm image, refusing to replace it"
  fi
fi

for tool in apt-get apt-cache dpkg-deb cpio ldd python3 flock find sort; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian: apt-get install busybox-static cpio python3)"
done
# The splitmix64 reference generates /srv/www/splitmix-32M.bin.
splitmix=$(realpath -m "$(dirname "${BASH_SOURCE[0]}")/../Tests/tools/splitmix.py")
[ -r "$splitmix" ] || die "$splitmix is missing (run images/build.sh from the repository)"
busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox is missing: apt-get install busybox-static"
ldd "$busybox" >/dev/null 2>&1 && die "$busybox is dynamically linked: install busybox-static, not busybox"

compression=${FTVM_INITRD_COMPRESSION:-}
if [ -z "$compression" ]; then
  if command -v zstd >/dev/null; then compression=zstd; else compression=gzip; fi
fi
case "$compression" in
  zstd) command -v zstd >/dev/null || die "zstd is missing (apt-get install zstd) or set FTVM_INITRD_COMPRESSION=gzip" ;;
  gzip) command -v gzip >/dev/null || die "gzip is missing" ;;
  *) die "FTVM_INITRD_COMPRESSION must be zstd or gzip, not '$compression'" ;;
esac

# ---------------------------------------------------------------------------------------------
# Debian packages (the kernel and nginx): downloaded once per version into the cache, extracted
# once next to the .deb, never installed on the host.

cache=${FTVM_CACHE_DIR:-/var/cache/ftvm}

apt_updated=0
apt_update_once() { # reason
  [ "$apt_updated" = 0 ] || return 0
  apt_updated=1
  note "$1; running apt-get update"
  apt-get update -q >/dev/null 2>&1 || true
}
candidate_version() { # package: prints apt's candidate version, or nothing
  apt-cache show --no-all-versions "$1" 2>/dev/null | awk '/^Version:/ { print $2; exit }' || true
}
download_deb() { # package, version, cache directory: sets $downloaded to the cached .deb
  local pkg=$1 ver=$2 dir=$3 dl got
  downloaded="$dir/${pkg}_${ver//:/%3a}_amd64.deb"
  [ -s "$downloaded" ] && return 0
  note "downloading $pkg $ver"
  dl=$(mktemp -d "$dir/.download.XXXXXX")
  chmod 755 "$dl"
  # apt-get download drops privileges to _apt when it can write the directory; it still works
  # (with a warning) when it cannot.
  chown _apt "$dl" 2>/dev/null || true
  if ! (cd "$dl" && apt-get download -q "$pkg=$ver" >"$dl/log" 2>&1); then
    cat "$dl/log" >&2
    rm -rf "$dl"
    die "apt-get download $pkg=$ver failed"
  fi
  got=$(find "$dl" -name '*.deb' | head -n 1)
  [ -n "$got" ] || { rm -rf "$dl"; die "apt-get download $pkg=$ver produced no .deb"; }
  mv "$got" "$downloaded"
  rm -rf "$dl"
}

# ---------------------------------------------------------------------------------------------
# Kernel: download once, extract once, generate modules.dep once (all cached).

mkdir -p "$cache/kernel"
exec 9>"$cache/kernel/.lock"
flock 9   # parallel builds share the cache; the first one fills it

if [ -n "${FTVM_KERNEL_DEB:-}" ]; then
  [ -f "$FTVM_KERNEL_DEB" ] || die "FTVM_KERNEL_DEB=$FTVM_KERNEL_DEB: no such file"
  deb=$(realpath "$FTVM_KERNEL_DEB")
else
  kpkg=${FTVM_KERNEL_PACKAGE:-}
  if [ -z "$kpkg" ]; then
    resolve_kpkg() {
      apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ { print $2; exit }'
    }
    kpkg=$(resolve_kpkg || true)
    if [ -z "$kpkg" ]; then
      apt_update_once "apt-cache does not know linux-image-cloud-amd64"
      kpkg=$(resolve_kpkg || true)
    fi
  fi
  kver_deb=""
  if [ -n "$kpkg" ]; then
    kver_deb=$(candidate_version "$kpkg")
  fi
  if [ -n "$kpkg" ] && [ -n "$kver_deb" ]; then
    download_deb "$kpkg" "$kver_deb" "$cache/kernel"
    deb=$downloaded
  else
    # No usable apt metadata (offline, no lists): fall back to the newest cached kernel.
    deb=$(ls -1 "$cache"/kernel/linux-image-*-cloud-amd64_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$deb" ] || die "cannot find the cloud kernel package: apt-cache depends linux-image-cloud-amd64 gave nothing (run apt-get update) and $cache/kernel holds no .deb"
    note "apt cannot resolve the cloud kernel; using cached $(basename "$deb")"
  fi
fi

kdir="$cache/kernel/$(basename "$deb" .deb)"
if [ ! -f "$kdir/.complete" ]; then
  note "extracting $(basename "$deb")"
  rm -rf "$kdir" "$kdir.tmp"
  mkdir -p "$kdir.tmp"
  dpkg-deb -x "$deb" "$kdir.tmp"
  kv=$(ls -1 "$kdir.tmp/lib/modules" 2>/dev/null | head -n 1 || true)
  [ -n "$kv" ] && [ -d "$kdir.tmp/lib/modules/$kv/kernel" ] || die "$deb has no /lib/modules/VERSION/kernel"
  # The package does not ship modules.dep (the installer's depmod writes it): generate it here,
  # into the extracted tree only, with busybox's depmod (no kmod needed on the host).
  "$busybox" depmod -b "$kdir.tmp" "$kv"
  [ -s "$kdir.tmp/lib/modules/$kv/modules.dep" ] || die "depmod wrote no modules.dep for $kv"
  touch "$kdir.tmp/.complete"
  mv "$kdir.tmp" "$kdir"
fi
kv=$(ls -1 "$kdir/lib/modules" | head -n 1)
vmlinuz="$kdir/boot/vmlinuz-$kv"
[ -f "$vmlinuz" ] || die "no $vmlinuz in $deb"
moddir="$kdir/lib/modules/$kv"
flock -u 9

# ---------------------------------------------------------------------------------------------
# nginx: Debian's binary, unmodified (our nginx.conf, written below). In bookworm the package
# `nginx` ships /usr/sbin/nginx; nginx-light/-core/-full/-extras only add dynamic modules on top.
# Nothing of nginx-common is needed at run time: the config names its few MIME types inline and
# includes no other file. Download once, extract once (cached).

mkdir -p "$cache/nginx"
exec 8>"$cache/nginx/.lock"
flock 8

if [ -n "${FTVM_NGINX_DEB:-}" ]; then
  [ -f "$FTVM_NGINX_DEB" ] || die "FTVM_NGINX_DEB=$FTVM_NGINX_DEB: no such file"
  ndeb=$(realpath "$FTVM_NGINX_DEB")
else
  nver=$(candidate_version nginx)
  if [ -z "$nver" ]; then
    apt_update_once "apt-cache does not know nginx"
    nver=$(candidate_version nginx)
  fi
  if [ -n "$nver" ]; then
    download_deb nginx "$nver" "$cache/nginx"
    ndeb=$downloaded
  else
    ndeb=$(ls -1 "$cache"/nginx/nginx_*_amd64.deb 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$ndeb" ] || die "cannot find the nginx package: apt-cache show nginx gave nothing (run apt-get update) and $cache/nginx holds no .deb"
    note "apt cannot resolve nginx; using cached $(basename "$ndeb")"
  fi
fi
ndir="$cache/nginx/$(basename "$ndeb" .deb)"
if [ ! -f "$ndir/.complete" ]; then
  note "extracting $(basename "$ndeb")"
  rm -rf "$ndir" "$ndir.tmp"
  mkdir -p "$ndir.tmp"
  dpkg-deb -x "$ndeb" "$ndir.tmp"
  [ -f "$ndir.tmp/usr/sbin/nginx" ] || die "$ndeb has no /usr/sbin/nginx"
  touch "$ndir.tmp/.complete"
  mv "$ndir.tmp" "$ndir"
fi
nginx_bin="$ndir/usr/sbin/nginx"
nginx_version=$(dpkg-deb -f "$ndeb" Version)
# The libraries the package depends on (libc6, libcrypt1, libpcre2-8-0, libssl3, zlib1g): what
# to install when ldd finds one missing on this host.
nginx_libs=$(dpkg-deb -f "$ndeb" Depends | tr ',|' '\n\n' | awk '$1 ~ /^(lib|zlib)/ { print $1 }' | sort -u | tr '\n' ' ')
flock -u 8

# ---------------------------------------------------------------------------------------------
# Staging area, next to OUT so the final rename stays on one file system.

parent=$(dirname "$out")
if [ ! -d "$parent" ]; then
  # Create missing ancestors world-traversable: libvirt's QEMU (user libvirt-qemu) opens the files.
  mkdir -p "$parent"   # umask 022: every new level is 755
fi
# Leftovers of builds killed outright (SIGKILL, power loss); live builds are younger than this.
find "$parent" -maxdepth 1 -name ".$(basename "$out").build.*" -mmin +60 -exec rm -rf {} + 2>/dev/null || true
stage=$(mktemp -d "$parent/.$(basename "$out").build.XXXXXX")
cleanup() { rm -rf "$stage"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
chmod 755 "$stage"
root="$stage/root"
img="$stage/image"
mkdir -p "$root" "$img"

# ---------------------------------------------------------------------------------------------
# Root file system

cd "$root"
mkdir -p bin sbin usr/bin usr/sbin lib lib64 etc/ftvm proc sys dev run tmp root srv/www var
chmod 1777 tmp
ln -s ../run var/run

# busybox and its applets (symlinks made here, so /init needs no --install at boot).
cp "$busybox" bin/busybox
while read -r applet; do
  case "$applet" in ""|bin/busybox|linuxrc) continue ;; esac
  mkdir -p "${applet%/*}"
  [ -e "$applet" ] || ln -s /bin/busybox "$applet"
done < <("$busybox" --list-full)

# The two Swift binaries and the shared libraries they need, at the paths ldd names.
install -m 755 "$agent" bin/ftvm-agent
install -m 755 "$service" bin/ftvm-demo-service

copy_lib() { # absolute path on the host -> same path in the image (symlinks resolved)
  local path=$1
  [ -e "$root$path" ] && return
  mkdir -p "$root$(dirname "$path")"
  cp -L "$path" "$root$path"
  chmod 755 "$root$path"
}
libs_of() { # binary [hint]: prints the absolute paths of the libraries (and interpreter) it needs
  local binary=$1 hint=${2:-} output
  if ! output=$(ldd "$binary" 2>&1); then
    case "$output" in *"not a dynamic executable"*|*"statically linked"*) return 0 ;; esac
    die "ldd $binary failed: $output"
  fi
  if grep -q "not found" <<<"$output"; then
    die "$binary needs libraries this host does not have:"$'\n'"$(grep 'not found' <<<"$output")${hint:+$'\n'$hint}"
  fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$output"
}
swift_runtime=0
for binary in "$agent" "$service"; do
  libs=$(libs_of "$binary")
  for lib in $libs; do
    case "$lib" in */swift/linux/*) swift_runtime=1 ;; esac
    copy_lib "$lib"
  done
done
# glibc dlopens libgcc_s for thread cancellation and unwinding; ldd cannot see that.
if [ ! -e "$root/lib/x86_64-linux-gnu/libgcc_s.so.1" ] && [ ! -e "$root/usr/lib/x86_64-linux-gnu/libgcc_s.so.1" ]; then
  for lib in /lib/x86_64-linux-gnu/libgcc_s.so.1 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1; do
    if [ -e "$lib" ]; then copy_lib "$lib"; break; fi
  done
fi
# nginx at its usual path, byte for byte as Debian ships it, with its libraries from this host
# (copy_lib skips those the Swift binaries already brought: libc and the loader).
cp "$nginx_bin" usr/sbin/nginx
chmod 755 usr/sbin/nginx
libs=$(libs_of "$nginx_bin" "install them: apt-get install $nginx_libs(the libraries nginx $nginx_version depends on; scripts/setup.sh installs them)")
for lib in $libs; do copy_lib "$lib"; done
if [ "$swift_runtime" = 1 ]; then
  note "warning: a binary links the Swift runtime dynamically (not built with --static-swift-stdlib); copied its libraries too"
  # Dynamic Swift binaries find their runtime through the toolchain's path; keep that path.
fi

# Kernel modules: the listed ones plus everything they depend on (from modules.dep), loaded by
# /init in dependency order from /etc/ftvm/modules.
wanted_modules=(virtio virtio_ring virtio_pci virtio_pci_modern_dev virtio_pci_legacy_dev
  failover net_failover virtio_net pvpanic pvpanic_mmio virtio_rng)
declare -A dep_of path_of seen
while IFS= read -r line; do
  mod=${line%%:*}
  name=$(basename "$mod"); name=${name%%.ko*}; name=${name//-/_}
  path_of[$name]=$mod
  dep_of[$name]=${line#*:}
done <"$moddir/modules.dep"
load_order=()
add_module() { # name (- and _ are the same); dependencies first
  local name=${1//-/_} dep depname
  [ -n "${seen[$name]:-}" ] && return
  seen[$name]=1
  [ -n "${path_of[$name]:-}" ] || die "kernel $kv has no module $name (is it built in? see $kdir/boot/config-$kv)"
  for dep in ${dep_of[$name]}; do
    depname=$(basename "$dep"); depname=${depname%%.ko*}
    add_module "$depname"
  done
  load_order+=("${path_of[$name]}")
}
for m in "${wanted_modules[@]}"; do add_module "$m"; done
mkdir -p "lib/modules/$kv"
: >etc/ftvm/modules
: >"lib/modules/$kv/modules.dep"
for mod in "${load_order[@]}"; do
  case "$mod" in *.ko) ;; *) die "$mod is compressed; busybox insmod in /init expects plain .ko files" ;; esac
  mkdir -p "lib/modules/$kv/$(dirname "$mod")"
  cp "$moddir/$mod" "lib/modules/$kv/$mod"
  echo "/lib/modules/$kv/$mod" >>etc/ftvm/modules
  grep "^$mod:" "$moddir/modules.dep" >>"lib/modules/$kv/modules.dep"
done

# Configuration
echo "$version" >etc/ftvm/version
cat >etc/ftvm/services <<'EOF'
# Services the guest agent supervises: NAME PORT COMMAND ARGS...
# The agent reports ready once every service accepts a TCP connection on its port.
demo 80 /bin/ftvm-demo-service --port 80 --command-port 7070 --proxy-port 8090 --proxy-to 10.77.0.1:9000 --version-file /etc/ftvm/version
static 8080 /bin/busybox httpd -f -p 8080 -h /srv/www
nginx 8081 /usr/sbin/nginx -c /etc/nginx/nginx.conf
EOF
# Our config for Debian's binary. The agent supervises nginx in the foreground (daemon off) and
# signals its whole process group on crash/hang faults (the master and its worker together).
mkdir -p etc/nginx
# nginx's own TLS on 8444, with a certificate made here: only the in-guest baseline of the HTTPS
# benchmark (scripts/bench_https.py) uses it. ftvm's HTTPS is terminated on the host
# (docs/https.md); a TLS connection to the guest itself is reset at every failover.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -subj "/CN=10.77.0.2" \
  -addext "subjectAltName=IP:10.77.0.2" -keyout etc/nginx/tls-key.pem -out etc/nginx/tls-cert.pem 2>/dev/null \
  || die "openssl could not make the in-guest benchmark's certificate (apt-get install openssl)"
chmod 600 etc/nginx/tls-key.pem
cat >etc/nginx/nginx.conf <<'EOF'
# Written by images/build.sh (docs/image.md): Debian's nginx, unmodified, serving /srv/www on 8081.
daemon off;
master_process on;
worker_processes 1;
user nobody nogroup;
pid /run/nginx.pid;
error_log stderr;
worker_rlimit_nofile 4096;

events {
    worker_connections 1024;
}

http {
    # Only what /srv/www holds (nginx-common's mime.types is not in the image).
    types {
        text/html html;
    }
    default_type application/octet-stream;
    access_log off;
    # A 404 is the client's business, not a line on the guest's console.
    log_not_found off;
    # "Server: nginx" without the version: answers stay byte-identical across an nginx update,
    # so a connection replayed into a newer image regenerates the same headers.
    server_tokens off;
    sendfile on;
    # Long keep-alive sessions (tests send 20,000+ requests on one connection).
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    # The compiled-in temp paths are under /var/lib/nginx, which the image lacks; nginx creates
    # each of these (one level, owned by the worker's user) at start.
    client_body_temp_path /tmp/nginx-client-body;
    proxy_temp_path /tmp/nginx-proxy;
    fastcgi_temp_path /tmp/nginx-fastcgi;
    uwsgi_temp_path /tmp/nginx-uwsgi;
    scgi_temp_path /tmp/nginx-scgi;

    # The back end in the clients' network that /proxy/ forwards to (docs/relay-servers.md):
    # nginx is then a relay server whose own connections ftvm carries across a failover.
    upstream relay_backend {
        server 10.77.0.1:9000;
        keepalive 8;
    }

    server {
        listen 8081;
        root /srv/www;
        index index.html;

        # HTTPS terminated on the host (docs/https.md): the terminator speaks to the guest from
        # the subnet's last host and names the client in X-Forwarded-For on every request, which
        # nginx takes as the client's address ($remote_addr, what a log would show); /whoami
        # answers with it.
        set_real_ip_from 10.77.0.254;
        real_ip_header X-Forwarded-For;
        location = /whoami {
            default_type text/plain;
            return 200 "$remote_addr\n";
        }

        location /proxy/ {
            proxy_pass http://relay_backend/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Stream the answer as the client takes it (no temp files, back-pressure to the
            # back end).
            proxy_buffering off;
        }

        # The same back end without upstream keep-alive: nginx's default, one back-end
        # connection per request (`Connection: close`), which a replay must match request by
        # request (issue 24).
        location /proxy-once/ {
            proxy_pass http://10.77.0.1:9000/;
            proxy_http_version 1.1;
            proxy_buffering off;
        }
    }

    # TLS terminated in the guest, for the HTTPS benchmark's baseline only (see above).
    server {
        listen 8444 ssl;
        ssl_certificate /etc/nginx/tls-cert.pem;
        ssl_certificate_key /etc/nginx/tls-key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        # Encrypting under TCG is slow: without a bound, one event-loop turn of a download
        # encrypts up to 2 MiB, longer than the agent's 1 s liveness probe waits, and the busy
        # nginx is taken for a hung one (a failover).
        sendfile_max_chunk 128k;
        root /srv/www;
    }
}
EOF
cat >etc/inittab <<'EOF'
# busybox init (PID 1) after /init has set up the system: it reaps orphans and runs the agent
# once. The agent is never respawned: if it dies, the heartbeat stops and the host takes over.
::once:/bin/ftvm-agent
::ctrlaltdel:/bin/true
EOF
cat >etc/passwd <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >etc/group <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
cat >etc/hosts <<'EOF'
127.0.0.1 localhost
EOF
echo ftvm >etc/hostname
cat >etc/image.env <<EOF
FTVM_IMAGE_VERSION=$version
FTVM_KERNEL_VERSION=$kv
EOF

install -m 755 /dev/stdin init <<'INIT'
#!/bin/busybox sh
# ftvm guest /init: mount, load the NIC and pvpanic drivers, configure eth0 from the kernel
# command line (ftvm.ip=ADDR/PREFIX [ftvm.gw=ADDR] [ftvm.mtu=N] [ftvm.hostname=NAME] [ftvm.debug=1]), then
# hand PID 1 to busybox init, which runs /bin/ftvm-agent once (see /etc/inittab).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
say() { echo "ftvm-init: $*"; }

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
# The kernel opened /dev/console from the initramfs node; reopen it on devtmpfs.
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /dev/shm
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run

ip='' gw='' name=ftvm debug='' mtu=''
set -f
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    ftvm.ip=*) ip=${arg#ftvm.ip=} ;;
    ftvm.gw=*) gw=${arg#ftvm.gw=} ;;
    ftvm.hostname=*) name=${arg#ftvm.hostname=} ;;
    ftvm.debug=*) debug=${arg#ftvm.debug=} ;;
    ftvm.mtu=*) mtu=${arg#ftvm.mtu=} ;;
  esac
done
set +f
hostname "$name"

# Magic SysRq on (the fault injector panics the kernel with `echo c > /proc/sysrq-trigger`).
echo 1 >/proc/sys/kernel/sysrq
# IPv4 only: no link-local IPv6 chatter from two guests sharing one MAC.
echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null
echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null

while read -r module; do
  case "$module" in ""|"#"*) continue ;; esac
  insmod "$module" || say "ERROR: insmod $module failed"
done </etc/ftvm/modules

ip link set lo up
if [ -z "$ip" ]; then
  say "ERROR: no ftvm.ip=ADDR/PREFIX on the kernel command line; continuing without network"
else
  case "$ip" in
    */*) ;;
    *) say "ftvm.ip=$ip has no /PREFIX; assuming /32"; ip=$ip/32 ;;
  esac
  # virtio_net binds while insmod runs, but give a slow probe a moment.
  n=0
  while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 50 ]; do usleep 20000; n=$((n + 1)); done
  if [ ! -e /sys/class/net/eth0 ]; then
    say "ERROR: no eth0 (no virtio-net device?); continuing without network"
  elif [ -n "$mtu" ] && ! ip link set eth0 mtu "$mtu"; then
    say "ERROR: cannot set eth0 mtu $mtu; continuing without network"
  elif ! ip addr add "$ip" dev eth0 || ! ip link set eth0 up; then
    say "ERROR: cannot configure eth0 with $ip; continuing without network"
  else
    if [ -n "$gw" ]; then ip route add default via "$gw" dev eth0 || say "ERROR: cannot add default route via $gw"; fi
    read -r up _ </proc/uptime
    say "network up $ip at $up"
  fi
fi

if [ "$debug" = 1 ]; then
  say "modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
  ip -o addr show | while read -r line; do say "addr: $line"; done
  ip route show | while read -r line; do say "route: $line"; done
  say "sysrq=$(cat /proc/sys/kernel/sysrq) cmdline: $(cat /proc/cmdline)"
fi

read -r up _ </proc/uptime
say "starting busybox init at $up"
exec /bin/busybox init
INIT

# The static server's files: a small page and a deterministic 4 MiB binary.
cat >srv/www/index.html <<'EOF'
<!DOCTYPE html>
<html><head><title>ftvm static</title></head>
<body><p>Served by busybox httpd inside an ftvm guest.</p>
<p><a href="blob.bin">blob.bin</a> (4 MiB, deterministic)</p></body></html>
EOF
# SHAKE-256 is a fixed function: this seed gives the same 4 MiB on every build and every host.
python3 -c '
import hashlib, sys
sys.stdout.buffer.write(hashlib.shake_256(b"ftvm static blob v1").digest(4 * 1024 * 1024))
' >srv/www/blob.bin
# A large file for long downloads: the first 32 MiB of the splitmix64 stream with seed 1, from the
# project's reference (Tests/tools/splitmix.py), so `splitmix.py 33554432 1` prints its SHA-256.
python3 -B "$splitmix" --write 33554432 1 >srv/www/splitmix-32M.bin
# What `python3 Tests/tools/splitmix.py 33554432 1` prints (its slow reference, 2 s; this is 0.1 s).
splitmix_sha=$(sha256sum srv/www/splitmix-32M.bin | cut -d' ' -f1)
[ "$splitmix_sha" = 93be6d417914e825fa26a760e8971ac7cb318b819f10d7519058c546132252ce ] ||
  die "srv/www/splitmix-32M.bin has SHA-256 $splitmix_sha, not the splitmix64 stream's (did $splitmix change?)"

# Device nodes for the kernel's initial console (devtmpfs replaces /dev right after).
if ! { mknod -m 600 dev/console c 5 1 && mknod -m 666 dev/null c 1 3; } 2>/dev/null; then
  note "warning: cannot mknod (not root?): early kernel messages about /dev/console are expected"
fi

# Fixed timestamps: the same inputs give the same cpio, and busybox httpd's Last-Modified and
# ETag (mtime-size) for /srv/www are equal in every build, so replay across an upgrade matches.
find . -exec touch -h -d @1700000000 {} +
chmod -R u+rwX,go+rX,go-w .
chmod 1777 tmp
[ -c dev/console ] && chmod 600 dev/console

cd "$stage"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) >"$stage/initrd.cpio"
case "$compression" in
  zstd) zstd -q -T0 -12 "$stage/initrd.cpio" -o "$img/initrd.img" ;;
  gzip) gzip -n -9 <"$stage/initrd.cpio" >"$img/initrd.img" ;;
esac
unpacked=$(( ($(stat -c %s "$stage/initrd.cpio") + 1048575) / 1048576 ))
rm -f "$stage/initrd.cpio"

cp "$vmlinuz" "$img/vmlinuz"
cp -r --preserve=timestamps "$root/srv/www" "$img/www"
cat >"$img/image.env" <<EOF
FTVM_IMAGE_VERSION=$version
FTVM_KERNEL_VERSION=$kv
FTVM_BUILT_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
FTVM_KERNEL_PACKAGE=$(basename "$deb" .deb)
FTVM_INITRD_COMPRESSION=$compression
FTVM_AGENT_SHA256=$(sha256sum "$agent" | cut -d' ' -f1)
FTVM_SERVICE_SHA256=$(sha256sum "$service" | cut -d' ' -f1)
FTVM_NGINX_PACKAGE=$(basename "$ndeb" .deb)
FTVM_NGINX_SHA256=$(sha256sum "$nginx_bin" | cut -d' ' -f1)
EOF
chmod -R u+rwX,go+rX,go-w "$img"
chmod 755 "$img"

# ---------------------------------------------------------------------------------------------
# Swap the finished image in. renameat2(RENAME_EXCHANGE) swaps two directories atomically, so
# OUT is never missing; where it is unsupported, fall back to two renames.

if [ -e "$out" ]; then
  if python3 - "$img" "$out" <<'EOF'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
if libc.renameat2(AT_FDCWD, os.fsencode(sys.argv[1]), AT_FDCWD, os.fsencode(sys.argv[2]), RENAME_EXCHANGE) != 0:
    sys.exit(1)
EOF
  then
    : # $img now holds the old image; the trap removes it with $stage
  else
    mv "$out" "$stage/old"
    mv "$img" "$out"
  fi
else
  mv "$img" "$out"
fi

# Warn when libvirt-qemu could not reach the files.
dir=$parent
while [ "$dir" != / ]; do
  mode=$(stat -c %A "$dir")
  [ "${mode:9:1}" = x ] || [ "${mode:9:1}" = t ] || note "warning: $dir is not world-traversable; libvirt's QEMU cannot read $out"
  dir=$(dirname "$dir")
done

size=$(du -h "$out/initrd.img" | cut -f1)
# The guest unpacks the initramfs into a tmpfs sized at half the RAM the kernel has free while
# it still holds the compressed initrd: ~81 MiB in a 256 MiB guest (docs/image.md, "Memory").
note "built $out: version $version, kernel $kv, initrd $size ($compression, $unpacked MiB unpacked)"
