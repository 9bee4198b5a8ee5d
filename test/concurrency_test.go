package test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podctl/podctl/internal/failpoint"
	"github.com/podctl/podctl/test/harness"
)

// exitBusy is podctl's exit status for errdefs.Busy.
const exitBusy = 12

// TestConcurrentMigrations migrates eight pods at once between two docks
// in both directions, starts two migrations of the same pod at once, and
// stops a dock with SIGTERM while it receives.
func TestConcurrentMigrations(t *testing.T) {
	harness.RequireRoot(t)
	lan := harness.NewLAN(t, podctlBin, 2)
	pki := lan.PKI(t)
	a, b := lan.Hosts[0], lan.Hosts[1]

	t.Run("eight-at-once-both-ways", func(t *testing.T) {
		docks := []*harness.Dock{lan.StartDock(t, 0, pki), lan.StartDock(t, 1, pki)}
		defer docks[0].Stop()
		defer docks[1].Stop()
		// Pods are made on one host (hosts allocate addresses on their
		// own), and half of them moved to the other first.
		var names []string
		for i := 0; i < 8; i++ {
			name := fmt.Sprintf("p%d", i)
			names = append(names, name)
			a.MustPodctl("create", "--name", name, "--", "sh", "-c", counterScript)
		}
		for _, name := range names[4:] {
			a.MustPodctl("migrate", name, "--to", lan.DockAddr(1), "--pki", pki)
		}
		counted := map[string]int{}
		host := func(name string) (from, to *harness.Host, dock int) {
			if slices.Index(names, name) < 4 {
				return a, b, 1
			}
			return b, a, 0
		}
		for _, name := range names {
			from, _, _ := host(name)
			counted[name] = consecutive(t, name+"'s log", waitLog(t, from, name, "3\n"))
		}
		var wg sync.WaitGroup
		results := make([]harness.Result, len(names))
		for i, name := range names {
			from, _, dock := host(name)
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = from.Podctl("migrate", name, "--to", lan.DockAddr(dock), "--pki", pki)
			}()
		}
		wg.Wait()
		for i, name := range names {
			if results[i].Code != 0 {
				t.Errorf("migrate %s: exit %d: %s", name, results[i].Code, results[i].Stderr)
			}
		}
		for _, name := range names {
			from, to, _ := host(name)
			if !runningOn(t, to, name) || runningOn(t, from, name) {
				t.Fatalf("%s: on its destination %v, on its source %v", name, runningOn(t, to, name), runningOn(t, from, name))
			}
			harness.Eventually(t, 20*time.Second, func() error {
				if n := consecutive(t, name+"'s log", to.MustPodctl("logs", name)); n < counted[name]+5 {
					return fmt.Errorf("%s counted to %d only (was at %d)", name, n, counted[name])
				}
				return nil
			})
		}
		for _, h := range []*harness.Host{a, b} {
			for _, p := range mustPods(t, h) {
				h.MustPodctl("rm", "-f", p.Name)
			}
		}
	})

	t.Run("the-same-pod-twice", func(t *testing.T) {
		dock := lan.StartDock(t, 1, pki)
		defer dock.Stop()
		createCounter(t, a, "twice")
		var wg sync.WaitGroup
		results := make([]harness.Result, 2)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = a.Podctl("migrate", "twice", "--to", lan.DockAddr(1), "--pki", pki)
			}()
		}
		wg.Wait()
		ok, busy := 0, 0
		for _, r := range results {
			switch {
			case r.Code == 0:
				ok++
			case r.Code == exitBusy && strings.Contains(r.Stderr, "busy"):
				busy++
			default:
				t.Errorf("migrate: exit %d: %s", r.Code, r.Stderr)
			}
		}
		if ok != 1 || busy != 1 {
			t.Fatalf("%d migrations proceeded and %d were refused as busy; want one of each", ok, busy)
		}
		if !runningOn(t, b, "twice") || podNames(t, a) != "" {
			t.Fatalf("destination %s, source %s", podNames(t, b), podNames(t, a))
		}
		b.MustPodctl("rm", "-f", "twice")
	})

	t.Run("dock-stopped-while-receiving", func(t *testing.T) {
		createCounter(t, a, "victim")
		makePodNetwork(t, b)
		before := b.Snapshot()
		// The dock holds the receive once the archive is in; SIGTERM
		// must end it cleanly.
		dock := lan.StartDockEnv(t, 1, pki, failpoint.EnvVar+"="+failpoint.HoldPrefix+"dock:extracted")
		counted := consecutive(t, "victim's log", a.MustPodctl("logs", "victim"))
		mig := harness.StartBackground(t, a.Command(a.PodctlArgv("migrate", "victim", "--to", lan.DockAddr(1), "--pki", pki)...))
		mig.WaitFor(dock.Stderr, "failpoint: holding at dock:extracted")
		syscall.Kill(dock.Pid(), syscall.SIGTERM)
		harness.Eventually(t, 30*time.Second, func() error {
			if !dock.Exited() {
				return fmt.Errorf("the dock runs on after SIGTERM")
			}
			return nil
		})
		if r := mig.Wait(); r.Code == 0 {
			t.Fatal("the migration succeeded though its dock was stopped before restoring")
		}
		if code := dock.ExitCode(); code < 0 {
			t.Fatalf("the dock did not stop cleanly (killed by a signal); its log:\n%s", dock.Stderr())
		}
		if !runningOn(t, a, "victim") {
			t.Fatal("the source pod does not run")
		}
		harness.Eventually(t, 20*time.Second, func() error {
			if n := consecutive(t, "victim's log", a.MustPodctl("logs", "victim")); n < counted+5 {
				return fmt.Errorf("counted to %d only (was at %d)", n, counted)
			}
			if d := before.Diff(b.Snapshot()); d != "" {
				return fmt.Errorf("the destination changed: %s", d)
			}
			return nil
		})
		if r := a.Podctl("rm", "-f", "victim"); r.Code != 0 {
			t.Fatal(r.Stderr)
		}
	})
}
