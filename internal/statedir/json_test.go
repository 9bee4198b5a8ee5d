package statedir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.json")
	var got map[string]int
	if err := ReadJSON(path, &got); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNotExist", err)
	}
	if err := WriteJSON(path, map[string]int{"a": 1}, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ReadJSON(path, &got); err != nil || got["a"] != 1 {
		t.Fatalf("read back %v, %v", got, err)
	}
	os.WriteFile(path, []byte("{"), 0o600)
	if err := ReadJSON(path, &got); err == nil || !strings.Contains(err.Error(), "corrupt m.json") {
		t.Fatalf("torn file: %v", err)
	}
}
