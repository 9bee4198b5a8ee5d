# echo serves TCP on port 7000, echoing every line back, a thread per
# connection. With an argument N it also holds N MiB of memory, every page
# different, and writes "mem-ok" or "mem-bad" to /tmp/result whenever
# /tmp/check appears (the memory must survive migration intact).
import hashlib, os, socket, sys, threading, time

mem_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 0
buf = bytearray(hashlib.sha256(b"seed").digest() * (1 << 15)) * mem_mb
for i in range(0, len(buf), 4096):
    buf[i] = (i >> 12) & 0xFF
sum0 = hashlib.sha256(buf).hexdigest()

def checker():
    while True:
        if os.path.exists("/tmp/check"):
            os.remove("/tmp/check")
            ok = hashlib.sha256(buf).hexdigest() == sum0
            open("/tmp/result.tmp", "w").write("mem-ok\n" if ok else "mem-bad\n")
            os.rename("/tmp/result.tmp", "/tmp/result")
        time.sleep(0.05)

threading.Thread(target=checker, daemon=True).start()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 7000))
srv.listen(8)
open("/tmp/ready", "w").write("ready\n")
def serve(conn):
    for line in conn.makefile("rb"):
        conn.sendall(line)
    conn.close()

while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
