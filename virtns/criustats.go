package virtns

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/checkpoint-restore/go-criu/v8/crit"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/stats"
)

// CRIUStats is CRIU's own account of a dump or a restore: what it writes
// in the images directory as stats-dump or stats-restore, read with
// go-criu. The fields of the other operation are zero.
type CRIUStats struct {
	// Freezing is how long CRIU took to freeze the tasks, Frozen how
	// long they stayed frozen during the dump, MemDump the collection of
	// their memory and MemWrite its writing.
	Freezing time.Duration `json:"freezingNs,omitempty"`
	Frozen   time.Duration `json:"frozenNs,omitempty"`
	MemDump  time.Duration `json:"memdumpNs,omitempty"`
	MemWrite time.Duration `json:"memwriteNs,omitempty"`
	// PagesScanned and PagesWritten count the memory pages the dump looked
	// at and wrote (or left for post-copy: PagesLazy).
	PagesScanned uint64 `json:"pagesScanned,omitempty"`
	PagesWritten uint64 `json:"pagesWritten,omitempty"`
	PagesLazy    uint64 `json:"pagesLazy,omitempty"`
	// Forking is how long a restore took to recreate the process tree,
	// Restore its whole time, and PagesRestored the pages it read.
	Forking       time.Duration `json:"forkingNs,omitempty"`
	Restore       time.Duration `json:"restoreNs,omitempty"`
	PagesRestored uint64        `json:"pagesRestored,omitempty"`
}

// DumpStats reads the statistics of the dump whose images are in dir.
func DumpStats(dir string) (*CRIUStats, error) {
	d, err := crit.GetDumpStats(dir)
	if err != nil {
		return nil, statsError("stats-dump", err)
	}
	return FromDumpStats(d), nil
}

// FromDumpStats converts go-criu's dump statistics (which Podman prints
// too, with --print-stats).
func FromDumpStats(d *stats.DumpStatsEntry) *CRIUStats {
	return &CRIUStats{
		Freezing:     micros(d.GetFreezingTime()),
		Frozen:       micros(d.GetFrozenTime()),
		MemDump:      micros(d.GetMemdumpTime()),
		MemWrite:     micros(d.GetMemwriteTime()),
		PagesScanned: d.GetPagesScanned(),
		PagesWritten: d.GetPagesWritten(),
		PagesLazy:    d.GetPagesLazy(),
	}
}

// RestoreStats reads the statistics of the restore from the images in
// dir.
func RestoreStats(dir string) (*CRIUStats, error) {
	r, err := crit.GetRestoreStats(dir)
	if err != nil {
		return nil, statsError("stats-restore", err)
	}
	return FromRestoreStats(r), nil
}

// FromRestoreStats converts go-criu's restore statistics.
func FromRestoreStats(r *stats.RestoreStatsEntry) *CRIUStats {
	return &CRIUStats{
		Forking:       micros(r.GetForkingTime()),
		Restore:       micros(r.GetRestoreTime()),
		PagesRestored: r.GetPagesRestored(),
	}
}

// micros converts CRIU's microsecond counts.
func micros(us uint32) time.Duration { return time.Duration(us) * time.Microsecond }

func statsError(file string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("CRIU wrote no %s", file)
	}
	return fmt.Errorf("read CRIU's %s: %w", file, err)
}
