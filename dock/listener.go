package dock

import (
	"log/slog"
	"net"

	"github.com/podctl/podctl/internal/budget"
)

// ConnMemory is the share of a dock's memory budget each open connection
// holds: what HTTP/2 lets its peer make the dock buffer before any
// handler reads it (the connection's flow-control window), which a peer
// may fill at once.
const ConnMemory = 2 * streamWindow

// budgetedListener charges every connection it accepts ConnMemory of the
// dock's memory budget, for as long as the connection is open, and
// closes at once one it cannot charge: a dock full of connections takes
// no more rather than hold more than its budget.
type budgetedListener struct {
	net.Listener
	mem *budget.Budget
	log *slog.Logger
}

func (l budgetedListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, ok := l.mem.TryTake(ConnMemory)
		if ok {
			return &chargedConn{Conn: conn, release: release}, nil
		}
		l.log.Warn("connection refused: its buffers do not fit the budget", "remote", conn.RemoteAddr().String(), "budget", l.mem.String())
		conn.Close()
	}
}

// chargedConn gives its share of the budget back when it is closed.
type chargedConn struct {
	net.Conn
	release func()
}

func (c *chargedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
