# Shared by the CLI test scripts (sourced): free_port prints a TCP port on
# 127.0.0.1 that nobody listens on now. The kernel picks it, so scripts run
# side by side (ctest -j) do not collide as ports derived from $$ could.
free_port() {
    python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
