package restart

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/podctl/podctl/checkpoint"
	"github.com/podctl/podctl/internal/errdefs"
)

// TestChecksumsStrings checks that checksums.json's strings are unescaped
// as encoding/json unescapes them.
func TestChecksumsStrings(t *testing.T) {
	for _, raw := range []string{
		`""`, `"upper/a"`, `"a\"b\\c\/d"`, `"\b\f\n\r\t"`, `"\u0041\u00e9\u2028"`,
		`"\ud83d\ude00"`, `"\uD83D\uDE00"`, `"\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ude00\ud83d"`,
		`"\ud83d\ud83d\ude00"`, `"héllo ✓"`, "\"\xff\xfe\"", "\"a\xc3\"", "\"\xed\xa0\x80\"", `"\u0000"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatalf("json.Unmarshal(%q): %v", raw, err)
		}
		p := &sumsParser{br: bufio.NewReader(strings.NewReader(raw[1:]))}
		if err := p.string(maxNameLen); err != nil {
			t.Errorf("%q: %v", raw, err)
		} else if string(p.str) != want {
			t.Errorf("%q: got %q, want %q", raw, p.str, want)
		}
	}
	for _, raw := range []string{`"a`, "\"a\nb\"", `"\x"`, `"\u12"`, `"\u12g4"`, `"` + strings.Repeat("a", maxNameLen+1) + `"`} {
		var s string
		if json.Unmarshal([]byte(raw), &s) == nil && len(raw) <= maxNameLen {
			t.Fatalf("json.Unmarshal(%q) succeeded", raw)
		}
		p := &sumsParser{br: bufio.NewReader(strings.NewReader(raw[1:]))}
		if err := p.string(maxNameLen); err == nil {
			t.Errorf("%q: no error, got %q", raw, p.str)
		}
	}
}

// TestChecksumsJSON checks the JSON checksums.json may hold.
func TestChecksumsJSON(t *testing.T) {
	base := []tent{manifestEnt(t, testManifest()), reg("criu/x", "x"), dirEnt("upper"), reg("upper/a\u2028\x01\"", "y")}
	sums := map[string]string{}
	for _, e := range base {
		sums[e.hdr.Name] = sumOf(e)
	}
	entries := func(edit func(m map[string]string)) string {
		m := map[string]string{}
		for k, v := range sums {
			m[k] = v
		}
		if edit != nil {
			edit(m)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	indented, err := json.MarshalIndent(checkpoint.Checksums{Algorithm: "sha256", Entries: sums}, "\t", "   ")
	if err != nil {
		t.Fatal(err)
	}
	// Every name escaped, every way.
	var escaped strings.Builder
	escaped.WriteString(`{"entries":{`)
	i := 0
	for name, sum := range sums {
		if i > 0 {
			escaped.WriteString(",")
		}
		i++
		escaped.WriteString(`"`)
		for _, r := range name {
			if r > 0xffff {
				t.Fatal("test names are in the BMP")
			}
			fmt.Fprintf(&escaped, `\u%04X`, r)
		}
		fmt.Fprintf(&escaped, `":"%s"`, sum)
	}
	escaped.WriteString(`},"algorithm":"\u0073ha256"}`)

	for _, tc := range []struct{ name, doc, want string }{
		{"compact", `{"algorithm":"sha256","entries":` + entries(nil) + `}`, ``},
		{"indented", "\n\t " + string(indented) + "\n\r\n ", ``},
		{"escaped, entries first", escaped.String(), ``},
		{"no algorithm", `{"entries":` + entries(nil) + `}`, `archive: checksums.json: unsupported algorithm "" (want "sha256")`},
		{"algorithm after a mismatch", `{"entries":` + entries(func(m map[string]string) { m["criu/x"] = sums["upper"] }) + `,"algorithm":"md5"}`, `archive: checksums.json: unsupported algorithm "md5" (want "sha256")`},
		{"upper case hex", `{"algorithm":"sha256","entries":` + entries(func(m map[string]string) { m["criu/x"] = strings.ToUpper(m["criu/x"]) }) + `}`, `archive: checksum mismatch for criu/x`},
		{"missing before extra", `{"algorithm":"sha256","entries":` + entries(func(m map[string]string) { m["upper/z"] = m["upper"]; delete(m, "upper") }) + `}`, `archive: upper is missing from checksums.json`},
		{"least extra", `{"algorithm":"sha256","entries":` + entries(func(m map[string]string) { m["upper/z"] = ""; m["upper/b"] = ""; m["upper/y"] = "" }) + `}`, `archive: checksums.json lists "upper/b", which is not in the archive`},
		{"no entries", `{"algorithm":"sha256"}`, `archive: manifest.json is missing from checksums.json`},
		{"empty entries", `{"algorithm":"sha256","entries":{}}`, `archive: manifest.json is missing from checksums.json`},
		{"name twice", `{"algorithm":"sha256","entries":{"criu/x":"` + sums["criu/x"] + `","criu/x":"` + sums["criu/x"] + `"}}`, `archive: checksums.json: "criu/x" listed twice`},
		{"field twice", `{"algorithm":"sha256","algorithm":"sha256","entries":{}}`, `archive: checksums.json: field "algorithm" listed twice`},
		{"field case", `{"Algorithm":"sha256","entries":{}}`, `archive: checksums.json: json: unknown field "Algorithm"`},
		{"checksum not a string", `{"algorithm":"sha256","entries":{"criu/x":1}}`, `archive: checksums.json: the checksum of an entry is not a string`},
		{"algorithm not a string", `{"algorithm":null,"entries":{}}`, `archive: checksums.json: algorithm is not a string`},
		{"entries not an object", `{"algorithm":"sha256","entries":[]}`, `archive: checksums.json: invalid character '[' looking for the entries object`},
		{"not an object", `[]`, `archive: checksums.json: invalid character '[' looking for beginning of value`},
		{"empty", ``, `archive: checksums.json: unexpected end of JSON input`},
		{"cut short", `{"algorithm":"sha256","entries":{"criu/x"`, `archive: checksums.json: unexpected end of JSON input`},
		{"trailing comma", `{"algorithm":"sha256","entries":{},}`, `archive: checksums.json: invalid character '}' looking for beginning of object key string`},
		{"missing comma", `{"algorithm":"sha256" "entries":{}}`, `archive: checksums.json: invalid character '"' after object key:value pair`},
		{"trailing garbage", `{"algorithm":"sha256","entries":{}}x`, `archive: checksums.json: data after the JSON object`},
		{"long name", `{"entries":{"` + strings.Repeat("a", 5000) + `":""}}`, `archive: checksums.json: string longer than 4096 bytes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tarOf(t, append(append([]tent{}, base...), reg(checkpoint.ChecksumsName, tc.doc)))
			_, err := extractTo(data, Limits{}, filepath.Join(fastTempDir(t), "x"))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant %s", err, tc.want)
			}
			if k := errdefs.KindOf(err); k != errdefs.InvalidImage {
				t.Errorf("kind = %d, want InvalidImage", k)
			}
		})
	}
}

// longNames returns the entries of an archive of n regular files whose
// names are about 4000 bytes long, under 19 nested directories, with the
// manifest first.
func longNames(t testing.TB, n int) []tent {
	ents := []tent{manifestEnt(t, testManifest()), dirEnt("upper")}
	dir := "upper"
	for i := range 19 {
		dir += "/" + strings.Repeat(string(rune('a'+i)), 200)
		ents = append(ents, dirEnt(dir))
	}
	for i := range n {
		ents = append(ents, reg(fmt.Sprintf("%s/%s%04d", dir, strings.Repeat("f", 190), i), ""))
	}
	return ents
}

// zstdOf compresses data as one zstd frame.
func zstdOf(t testing.TB, data []byte) []byte {
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(data, nil)
}

// extractAllocated extracts data and returns what that allocated.
func extractAllocated(t *testing.T, data []byte) (uint64, error) {
	dest := filepath.Join(fastTempDir(t), "x")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := extractTo(data, DefaultLimits(), dest)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, err
}

// TestChecksumsBomb reproduces the checksums.json of the security review:
// after 2,000 entries with names of about 4000 bytes, it may be up to
// 1 MiB + (6 × 4000 + 96) bytes per entry, 47 MiB, which the reader used to
// allocate as soon as it read its header, and decode all at once. The
// reader now reads it as it arrives: it allocates no more for a hostile
// checksums.json than for an honest one.
func TestChecksumsBomb(t *testing.T) {
	ents := longNames(t, 2000)
	honest := tarOf(t, append(ents, sumsEnt(t, ents, nil)))
	honestAlloc, err := extractAllocated(t, zstdOf(t, honest))
	if err != nil {
		t.Fatal(err)
	}

	limit := int64(1 << 20)
	for _, e := range ents {
		limit += 6*int64(len(e.hdr.Name)) + 96
	}
	// The header of a checksums.json as large as the limit allows, then
	// nothing: the archive ends.
	var buf bytes.Buffer
	buf.Write(tarOf(t, ents))
	buf.Truncate(buf.Len() - 1024) // the end-of-archive marker
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: checkpoint.ChecksumsName, Mode: 0o644, Size: limit, ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	tw.Flush()
	truncated := buf.Bytes()
	// The whole of it, the checksums padded with spaces to the limit.
	sums := sumsEnt(t, ents, nil)
	sums.body += strings.Repeat(" ", int(limit)-len(sums.body))
	sums.hdr.Size = limit
	padded := tarOf(t, append(ents, sums))

	const slack = 4 << 20 // for the garbage collector's own state, the zstd decoder
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", truncated, "archive: truncated (unexpected end of data)"},
		{"padded", padded, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := zstdOf(t, tc.data)
			n, err := extractAllocated(t, data)
			t.Logf("a %d-byte archive (%d bytes of tar) with a %d-byte checksums.json: extracting allocated %.1f MiB, the honest archive %.1f MiB",
				len(data), len(tc.data), limit, float64(n)/(1<<20), float64(honestAlloc)/(1<<20))
			if tc.want == "" && err != nil {
				t.Fatalf("err = %v, want none", err)
			}
			if tc.want != "" && (err == nil || err.Error() != tc.want) {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
			if n > honestAlloc+slack {
				t.Errorf("extracting allocated %d bytes, more than %d for the honest archive", n, honestAlloc)
			}
		})
	}
}
