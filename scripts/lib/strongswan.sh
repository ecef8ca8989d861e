# shellcheck shell=bash
# Helpers to run strongSwan 5.9 (Debian's charon) as a userspace-ESP peer inside network
# namespaces, one charon per namespace. Source this file from a bash script running as root.
#
# How (see shared/reference/strongswan-peer.md):
# * The kernel here has no ESP/AH transforms, so charon must use its kernel-libipsec plugin
#   (userspace ESP over a TUN device `ipsec0`). With it charon always uses ESP-in-UDP (4500),
#   and installs its routes in table 220.
# * `ip netns exec NS` bind-mounts /etc/netns/NS/* over /etc/*, so each namespace gets its own
#   /etc/strongswan.conf and /etc/swanctl/. /run is shared, though, and charon keeps its pid file
#   and vici socket there: charon runs under `unshare -m` with a private tmpfs on /run, and
#   swanctl must run in that same mount namespace (`nsenter -t PID -m -n swanctl ...`).
# * `start_action = trap` does not work with kernel-libipsec: initiate explicitly.
#
# Functions (all return non-zero on failure and print why on stderr; safe under set -e):
#   ss_available                 charon, swanctl and the kernel-libipsec plugin are installed
#   ss_configure NS OPTIONS...   write /etc/netns/NS/{strongswan.conf,swanctl/swanctl.conf}
#   ss_start NS                  start charon in NS, wait for its vici socket
#   ss_swanctl NS ARGS...        run swanctl against NS's charon
#   ss_load NS                   swanctl --load-all
#   ss_initiate NS CHILD [SECS]  swanctl --initiate --child CHILD
#   ss_stop NS                   stop NS's charon (SIGTERM, then SIGKILL), wait for it
#   ss_cleanup                   stop every charon started here, remove every /etc/netns/NS
#                                directory configured here (call it from an EXIT trap)
#   ss_pid NS                    print charon's pid
#   ss_log NS                    print the path of charon's log file
#
# ss_configure options (defaults in brackets):
#   --local ADDR --remote ADDR        outer addresses (required); also the PSK identities
#   --local-ts NET --remote-ts NET    traffic selectors (required)
#   --esp PROPOSAL                    ESP proposal [aes128gcm16]; e.g. aes128-sha1, 3des-sha1
#   --ike PROPOSAL                    IKE proposal [aes128-sha256-modp2048]
#   --version 1|2                     IKE version [2]; 1 = Main Mode + Quick Mode
#   --psk SECRET                      pre-shared key [rswan-bench-psk]
#   --child NAME                      CHILD_SA name [net]
#   --logdir DIR                      where charon-NS.log goes [$SS_LOGDIR or /tmp]
#   --plugins "LIST"                  crypto plugins, most preferred first [$SS_CRYPTO_PLUGINS
#                                     or openssl (if installed) then aes sha1 sha2 ... gcm des]
#   --extra "TEXT"                    extra lines inside the CHILD_SA section (e.g. rekey_time = 0)

SS_CHARON=${SS_CHARON:-/usr/lib/ipsec/charon}
SS_PLUGIN_DIR=${SS_PLUGIN_DIR:-/usr/lib/ipsec/plugins}
declare -gA SS_PIDS=()
declare -gA SS_LOGS=()
declare -ga SS_CONFIGURED=()

ss_available() {
  [ -x "$SS_CHARON" ] || { echo "strongswan: $SS_CHARON not installed (strongswan-charon)" >&2; return 1; }
  command -v swanctl >/dev/null || { echo "strongswan: swanctl not installed (strongswan-swanctl)" >&2; return 1; }
  [ -e "$SS_PLUGIN_DIR/libstrongswan-kernel-libipsec.so" ] ||
    { echo "strongswan: kernel-libipsec plugin missing (libcharon-extra-plugins)" >&2; return 1; }
  command -v nsenter >/dev/null && command -v unshare >/dev/null ||
    { echo "strongswan: nsenter/unshare (util-linux) missing" >&2; return 1; }
}

# The crypto plugins to load, fastest first: openssl (AES-NI, CLMUL) when installed, then the
# portable C ones. charon prefers, for each algorithm, the plugin that registered it first.
ss_default_plugins() {
  local p=""
  [ -e "$SS_PLUGIN_DIR/libstrongswan-openssl.so" ] && p="openssl "
  echo "${p}random nonce aes sha1 sha2 md5 hmac gmp pem pkcs1 pubkey x509 gcm des kdf"
}

ss_configure() {
  local ns=$1
  shift
  local local_addr="" remote_addr="" lts="" rts="" esp="aes128gcm16" ike="aes128-sha256-modp2048"
  local version=2 psk="rswan-bench-psk" child="net" logdir=${SS_LOGDIR:-/tmp} extra=""
  local plugins=${SS_CRYPTO_PLUGINS:-$(ss_default_plugins)}
  while [ $# -gt 0 ]; do
    case $1 in
      --local) local_addr=$2 ;;
      --remote) remote_addr=$2 ;;
      --local-ts) lts=$2 ;;
      --remote-ts) rts=$2 ;;
      --esp) esp=$2 ;;
      --ike) ike=$2 ;;
      --version) version=$2 ;;
      --psk) psk=$2 ;;
      --child) child=$2 ;;
      --logdir) logdir=$2 ;;
      --plugins) plugins=$2 ;;
      --extra) extra=$2 ;;
      *) echo "ss_configure: unknown option $1" >&2; return 2 ;;
    esac
    shift 2
  done
  if [ -z "$local_addr" ] || [ -z "$remote_addr" ] || [ -z "$lts" ] || [ -z "$rts" ]; then
    echo "ss_configure: --local, --remote, --local-ts and --remote-ts are required" >&2
    return 2
  fi
  local etc=/etc/netns/$ns
  local known=0 n
  for n in "${SS_CONFIGURED[@]}"; do [ "$n" = "$ns" ] && known=1; done
  [ $known = 1 ] || SS_CONFIGURED+=("$ns")
  mkdir -p "$etc/swanctl" "$logdir" || return 1
  # The credential directories swanctl --load-all scans (it warns about each missing one).
  local d
  for d in x509 x509ca x509ocsp x509aa x509ac x509crl pubkey private rsa ecdsa bliss pkcs8 pkcs12; do
    mkdir -p "$etc/swanctl/$d"
  done
  local log=$logdir/charon-$ns.log
  SS_LOGS[$ns]=$log
  cat >"$etc/strongswan.conf" <<EOF
# Written by scripts/lib/strongswan.sh for namespace $ns.
charon {
	# Userspace ESP (kernel-libipsec) before kernel-netlink; crypto plugins first-preferred.
	load = $plugins kernel-libipsec kernel-netlink socket-default vici updown
	# No DNS/NBNS attributes, no daemon-wide syslog noise.
	install_virtual_ip = no
	filelog {
		bench {
			path = $log
			time_format = %H:%M:%S
			flush_line = yes
			default = 1
			ike = 1
			knl = 1
		}
	}
	syslog {
		identifier = charon-$ns
		daemon {
			default = -1
		}
	}
}
EOF
  cat >"$etc/swanctl/swanctl.conf" <<EOF
# Written by scripts/lib/strongswan.sh for namespace $ns.
connections {
	bench {
		version = $version
		local_addrs = $local_addr
		remote_addrs = $remote_addr
		proposals = $ike
		encap = yes
		local {
			auth = psk
			id = $local_addr
		}
		remote {
			auth = psk
			id = $remote_addr
		}
		children {
			$child {
				local_ts = $lts
				remote_ts = $rts
				esp_proposals = $esp
				mode = tunnel
				start_action = none
				$extra
			}
		}
	}
}
secrets {
	ike-bench {
		id-a = $local_addr
		id-b = $remote_addr
		secret = "$psk"
	}
}
EOF
}

ss_pid() { echo "${SS_PIDS[$1]:-}"; }
ss_log() { echo "${SS_LOGS[$1]:-}"; }

ss_start() {
  local ns=$1
  [ -e "/etc/netns/$ns/strongswan.conf" ] || { echo "ss_start: run ss_configure $ns first" >&2; return 1; }
  local log=${SS_LOGS[$ns]:-/tmp/charon-$ns.log}
  # ip netns exec and unshare both exec in place, so $! ends up being charon's own pid.
  # --propagation private keeps the tmpfs on /run from leaking into the parent namespace.
  ip netns exec "$ns" unshare -m --propagation private \
    sh -c 'mount -t tmpfs -o mode=0755 rswan-ss-run /run && exec "$0"' "$SS_CHARON" \
    >>"$log.stdout" 2>&1 </dev/null &
  local pid=$!
  SS_PIDS[$ns]=$pid
  local i
  for i in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "ss_start: charon in $ns exited; see $log and $log.stdout" >&2
      unset "SS_PIDS[$ns]"
      return 1
    fi
    if nsenter -t "$pid" -m -n test -S /run/charon.vici 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "ss_start: charon in $ns did not open its vici socket in 10 s; see $log" >&2
  return 1
}

ss_swanctl() {
  local ns=$1
  shift
  local pid=${SS_PIDS[$ns]:-}
  [ -n "$pid" ] || { echo "ss_swanctl: no charon running in $ns" >&2; return 1; }
  nsenter -t "$pid" -m -n swanctl "$@"
}

ss_load() { ss_swanctl "$1" --load-all >/dev/null; }

ss_initiate() {
  local ns=$1 child=$2 secs=${3:-30}
  ss_swanctl "$ns" --initiate --child "$child" --timeout "$secs" >/dev/null
}

ss_stop() {
  local ns=$1
  local pid=${SS_PIDS[$ns]:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "SS_PIDS[$ns]"
  return 0
}

ss_cleanup() {
  local ns
  for ns in "${!SS_PIDS[@]}"; do
    ss_stop "$ns"
  done
  for ns in "${SS_CONFIGURED[@]}"; do
    # Only the directories this file created, never /etc/netns itself.
    if [ -n "$ns" ]; then rm -rf "/etc/netns/${ns:?}"; fi
  done
  SS_CONFIGURED=()
  return 0
}
