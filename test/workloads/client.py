# client holds one TCP connection to HOST:PORT and sends numbered lines
# until the file STOP exists, checking that each comes back in order. It
# writes how many round trips it has done to PROGRESS and ends with
# "OK n" on stdout, or "ERROR ..." if a line is lost, repeated, reordered
# or the connection breaks.
import os, socket, sys, time

host, port, stop, progress = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
conn = socket.create_connection((host, port), timeout=10)
conn.settimeout(60)  # a migration stalls the peer for a while, never this long
f = conn.makefile("rb")
n = 0
try:
    while not os.path.exists(stop):
        n += 1
        conn.sendall(b"%d\n" % n)
        got = f.readline()
        if got != b"%d\n" % n:
            print("ERROR after %d: got %r" % (n - 1, got))
            sys.exit(1)
        if n % 5 == 0:
            open(progress + ".tmp", "w").write(str(n))
            os.rename(progress + ".tmp", progress)
        time.sleep(0.01)
except Exception as e:
    print("ERROR after %d: %r" % (n, e))
    sys.exit(1)
print("OK %d" % n)
