package migrate

import "time"

// sentCounter reports the bytes a migration has sent so far.
type sentCounter interface {
	Sent() (archive, pages int64)
}

// progress calls a migration's Progress callback with its phase when it
// changes and every 100 ms in between.
type progress struct {
	report func(phase string, sent, total int64)
	total  int64
	sent   sentCounter
	done   chan struct{}
}

// newProgress starts reporting to report (nil: nowhere) the bytes sent
// counts, against an estimated total.
func newProgress(report func(phase string, sent, total int64), total int64, sent sentCounter) *progress {
	p := &progress{report: report, total: total, sent: sent, done: make(chan struct{})}
	if report == nil {
		return p
	}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.phase("")
			}
		}
	}()
	return p
}

// phase reports a new phase ("" for the same one).
func (p *progress) phase(name string) {
	if p.report != nil {
		a, b := p.sent.Sent()
		p.report(name, a+b, p.total)
	}
}

// stop ends the reports.
func (p *progress) stop() { close(p.done) }
