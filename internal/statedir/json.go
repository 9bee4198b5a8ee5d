package statedir

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// ReadJSON decodes the JSON file path into v. A missing file's error
// wraps os.ErrNotExist; a file that does not decode is "corrupt".
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("corrupt %s: %w", filepath.Base(path), err)
	}
	return nil
}

// WriteJSON replaces path with v as indented JSON, atomically (see
// WriteFileAtomic).
func WriteJSON(path string, v any, perm os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(b, '\n'), perm)
}
