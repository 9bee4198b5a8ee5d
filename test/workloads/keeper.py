# keeper holds the kinds of state a checkpoint must keep: a pipe with
# unread data, a unix socketpair with an unread message, a file it keeps
# appending numbered lines to, a tree of child processes, and (optionally)
# a large buffer whose checksum it can recompute. Touch /tmp/check inside
# the pod and it writes what it finds to /tmp/result.
import hashlib, os, socket, sys, time

mem_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 0
r, w = os.pipe()
os.write(w, b"pipe-payload")
a, b = socket.socketpair()
a.send(b"sock-payload")

def child(depth):
    if depth > 0:
        if os.fork() == 0:
            child(depth - 1)
    while True:
        time.sleep(1)

kids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        child(1)
    kids.append(pid)

buf = bytearray()
if mem_mb:
    block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB, not all zero
    buf = bytearray(block) * mem_mb
    for i in range(0, len(buf), 4096):
        buf[i] = (i >> 12) & 0xFF  # every page different
sum0 = hashlib.sha256(buf).hexdigest()
open("/tmp/ready", "w").write(sum0 + "\n")

log = open("/tmp/append.log", "a")
n = 0
while True:
    n += 1
    log.write("%d\n" % n)
    log.flush()
    if os.path.exists("/tmp/check"):
        os.remove("/tmp/check")
        alive = all(os.waitpid(k, os.WNOHANG) == (0, 0) for k in kids)
        res = [os.read(r, 100).decode(), b.recv(100).decode(),
               "kids-alive" if alive else "kids-dead",
               "mem-ok" if hashlib.sha256(buf).hexdigest() == sum0 else "mem-bad"]
        tmp = "/tmp/result.tmp"
        open(tmp, "w").write(" ".join(res) + "\n")
        os.rename(tmp, "/tmp/result")
        os.write(w, b"pipe-payload")
        a.send(b"sock-payload")
    time.sleep(0.02)
