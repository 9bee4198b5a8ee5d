package size

import "testing"

func TestOrDefault(t *testing.T) {
	if OrDefault(int64(5), 9) != 5 || OrDefault(0, 9) != 9 || OrDefault(-1, 9) != 9 {
		t.Fatal("a positive limit stays, a zero or negative one takes the default")
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "4k": 4 << 10, "256m": 256 << 20, "1g": 1 << 30, "2GiB": 2 << 30} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "m", "-1", "0", "12x"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}
