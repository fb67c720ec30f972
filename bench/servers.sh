# Sourced by bench/http.sh, bench/http_perf.sh and bench/http_callgrind.sh
# (needs $root): where the builds go, the command line of each hello-world
# server and the peers crate's binaries they need. PEERS_TARGET_DIR, if set,
# is where the peers crate builds (default: as squall, CARGO_TARGET_DIR).

# One absolute target directory for both builds (the peers crate has its own
# workspace, so a relative CARGO_TARGET_DIR would mean two places).
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  mkdir -p "$CARGO_TARGET_DIR"
  export CARGO_TARGET_DIR=$(cd "$CARGO_TARGET_DIR" && pwd)
  squall_target=$CARGO_TARGET_DIR
  peers_target=$CARGO_TARGET_DIR
else
  squall_target=$root/target
  peers_target=$root/bench/peers/target
fi
# PEERS_TARGET_DIR: the peers' builds elsewhere (a shared one, say), so that
# a squall branch's target directory holds only squall.
if [ -n "${PEERS_TARGET_DIR:-}" ]; then
  mkdir -p "$PEERS_TARGET_DIR"
  peers_target=$(cd "$PEERS_TARGET_DIR" && pwd)
fi

server_cmd() { # name port -> the command line
  case $1 in
    squall) echo "$squall_target/release/examples/hello_server $2" ;;
    squallasync) echo "$squall_target/release/examples/hello_server --async $2" ;;
    squallraw) echo "$squall_target/release/examples/hello_raw $2" ;;
    squall2) echo "$squall_target/release/examples/hello_server --processes 2 $2" ;;
    squall2rp) echo "$squall_target/release/examples/hello_server --processes 2 --reuse-port $2" ;;
    hyper) echo "$peers_target/release/hello_hyper $2" ;;
    mio) echo "$peers_target/release/hello_mio $2" ;;
    actix) echo "$peers_target/release/hello_actix $2" ;;
    may) echo "$peers_target/release/hello_may $2" ;;
    tornado) echo "python3 $root/bench/peers/hello_tornado.py $2" ;;
    *) echo "unknown server $1" >&2; return 2 ;;
  esac
}

peer_bins() { # name... -> cargo's --bin arguments for the peers among them
  local s
  for s in "$@"; do
    case $s in
      hyper | mio | actix | may) printf -- '--bin hello_%s ' "$s" ;;
    esac
  done
}
