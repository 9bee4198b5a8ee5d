package test

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/podctl/podctl/test/harness"
)

// BenchmarkDesktop measures a desktop pod of 1280x800 against issue 18's
// targets: checkpoint and restore (next to raw CRIU on the same desktop,
// in the same run: cbCheckpointRestore), and migrations, stop-and-copy
// and --live, with the time from the end of each migration to the first
// framebuffer update its VNC viewer, connected throughout, receives.
//
//	go test -run NONE -bench Desktop -benchtime 1x ./test/
func BenchmarkDesktop(b *testing.B) {
	harness.RequireRoot(b)
	harness.NeedTool(b, "criu", "criu")
	needDesktop(b)
	wl := cbWorkload{name: "desk", create: []string{"--desktop", "--geometry", "1280x800"}, wait: waitDesktop}
	b.Run("checkpoint-restore", func(b *testing.B) {
		b.Logf("\n%s", cbCkptTable([]cbCkptRow{cbCheckpointRestore(b, wl)}))
	})
	b.Run("migrate", func(b *testing.B) {
		lan := harness.NewLAN(b, podctlBin, 2)
		pki := lan.PKI(b)
		for i := range lan.Hosts {
			lan.StartDock(b, i, pki)
		}
		pw := filepath.Join(b.TempDir(), "vncpass")
		os.WriteFile(pw, []byte(desktopPassword+"\n"), 0o600)
		lan.Hosts[0].MustPodctl("create", "--desktop", "--geometry", "1280x800", "--vnc-password-file", pw, "desk")
		waitDesktop(b, lan.Hosts[0], "desk")
		conn, err := harness.DialIn(lan.ClientNSPath, net.JoinHostPort(lan.Hosts[0].Inspect("desk").Endpoint.IP, "5900"), 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		viewer, err := harness.DialRFB(conn, desktopPassword, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		defer viewer.Close()
		// firstUpdate is how long after now the viewer receives an
		// update it asks for (a whole screen: the server answers at once).
		firstUpdate := func() float64 {
			start := time.Now()
			if err := viewer.Request(false); err != nil {
				b.Fatal(err)
			}
			if _, err := viewer.ReadUpdate(10 * time.Second); err != nil {
				b.Fatal(err)
			}
			return cbMs(time.Since(start))
		}
		firstUpdate()
		at := 0
		var rows []cbMigRow
		for _, live := range []bool{false, true} {
			var outs []cbMigOut
			var update []float64
			for i := 0; i < cbReps*b.N; i++ {
				outs = append(outs, cbMigrateOnce(b, lan, pki, "desk", at, 1-at, live))
				update = append(update, firstUpdate())
				at = 1 - at
			}
			name := map[bool]string{false: "stop-and-copy", true: "live"}[live]
			row := cbMigRowOf(name, outs)
			rows = append(rows, row)
			b.ReportMetric(row.downtime, name+"-downtime-ms")
			b.ReportMetric(cbMedian(update), name+"-first-update-ms")
			b.Logf("%s: downtimes ms %v; the viewer's first update after each move ms %v (median %.1f)",
				name, cbField(outs, func(o cbMigOut) time.Duration { return o.Downtime }), update, cbMedian(update))
		}
		b.ReportMetric(0, "ns/op")
		b.Logf("\n%s", cbMigTable(rows))
	})
}
