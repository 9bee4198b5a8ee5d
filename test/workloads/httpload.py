# httpload keeps requesting http://HOST/ (a new connection per request,
# one request at a time, about a hundred a second at most so that the
# client does not eat the CPU the server's checkpoint is measured on) until
# the file STOP exists. A failed request (the server is frozen, being
# dumped or not restored yet) is counted and retried; it never ends the
# loop. It writes "ok errors" to PROGRESS after every successful request
# and prints the same counts when it stops.
import http.client, os, sys, time

host, stop, progress = sys.argv[1], sys.argv[2], sys.argv[3]
ok = errors = 0
while not os.path.exists(stop):
    try:
        c = http.client.HTTPConnection(host, 80, timeout=2)
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        c.close()
        if r.status != 200:
            raise Exception("status %d" % r.status)
        ok += 1
        open(progress + ".tmp", "w").write("%d %d" % (ok, errors))
        os.rename(progress + ".tmp", progress)
    except Exception:
        errors += 1
    time.sleep(0.01)
print("%d %d" % (ok, errors))
