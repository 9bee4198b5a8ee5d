package harness

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// XMLText checks that doc is well-formed XML, and returns the name of its
// root element and all its character data (an SVG chart's titles,
// labels and legend).
func XMLText(doc []byte) (root, text string, err error) {
	var b strings.Builder
	dec := xml.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return root, b.String(), nil
		}
		if err != nil {
			return "", "", fmt.Errorf("not well-formed XML: %w", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
		case xml.CharData:
			b.Write(tok)
		}
	}
}
