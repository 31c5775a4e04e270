package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The yaml package reports problems as "line N: ..." with Go type names
// (e.g. "field prio not found in type config.fileUplink"). explainYAMLError
// rewrites them into messages that name the field's path in the file, which
// it finds by walking the document's node tree.

var (
	reSyntax       = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)
	reUnknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)
	reCannot       = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+|!\\S+)(?: `(.*)`)? into (.+)$")
	reDupKey       = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
	reDupField     = regexp.MustCompile(`^line (\d+): field (.+) already set in type (\S+)$`)
)

// knownFields lists the YAML keys of each file* type, for "unknown field"
// hints, keyed by the type name the yaml package prints.
var knownFields = func() map[string][]string {
	m := map[string][]string{}
	for _, v := range []any{fileConfig{}, fileGroup{}, fileAnnounce{}, fileUplink{}, fileHostPort{}} {
		t := reflect.TypeOf(v)
		var keys []string
		for i := range t.NumField() {
			key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			keys = append(keys, key)
		}
		m[t.String()] = keys
	}
	return m
}()

func explainYAMLError(err error, data []byte) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return explainSyntaxError(err, data)
	}
	idx := indexDocument(data)
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		errs = append(errs, errors.New(idx.explain(msg)))
	}
	return errors.Join(errs...)
}

func (idx nodeIndex) explain(msg string) string {
	if m := reUnknownField.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		where := "at the top level"
		if p, ok := idx.keyPath(line, m[2]); ok && p != "" {
			where = "in " + p
		}
		hint := ""
		if keys := knownFields[m[3]]; len(keys) > 0 {
			hint = " (known fields: " + strings.Join(keys, ", ") + ")"
		}
		return fmt.Sprintf("line %d: unknown field %q %s%s", line, m[2], where, hint)
	}
	if m := reCannot.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		tag, value, into := m[2], m[3], m[4]
		path := idx.valuePath(line, tag, value, into)
		if path == "" {
			path = "top level"
		}
		return fmt.Sprintf("line %d: %s: expected %s, got %s", line, path, describeType(into), describeValue(tag, value))
	}
	if m := reDupKey.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		key, err := strconv.Unquote(m[2])
		if err != nil {
			key = m[2]
		}
		return fmt.Sprintf("line %d: %s is given twice (first at line %s)", line, idx.fieldPath(line, key), m[3])
	}
	if m := reDupField.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return fmt.Sprintf("line %d: %s is given twice", line, idx.fieldPath(line, m[2]))
	}
	return msg
}

func describeType(goType string) string {
	switch {
	case goType == "int":
		return "an integer"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case goType == "duration":
		return `a duration such as "100ms"`
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "config."):
		return "a mapping"
	}
	return goType
}

func describeValue(tag, value string) string {
	switch tag {
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!str":
		return strconv.Quote(value)
	}
	if value == "" {
		return tag
	}
	return value
}

// nodeEntry records where a key or a value sits in the file.
type nodeEntry struct {
	line  int
	path  string // path of the value; for a key, path of its mapping
	isKey bool
	tag   string
	value string
	into  string // what the schema expects here, in the yaml package's words
}

type nodeIndex []nodeEntry

func indexDocument(data []byte) nodeIndex {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return nil
	}
	var idx nodeIndex
	var walk func(n *yaml.Node, path string, t reflect.Type)
	walk = func(n *yaml.Node, path string, t reflect.Type) {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		idx = append(idx, nodeEntry{line: n.Line, path: path, tag: n.ShortTag(), value: n.Value, into: typeLabel(t)})
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path, t)
			}
		case yaml.SequenceNode:
			var elem reflect.Type
			if t != nil && t.Kind() == reflect.Slice {
				elem = t.Elem()
			}
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i), elem)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				idx = append(idx, nodeEntry{line: k.Line, path: path, isKey: true, value: k.Value})
				walk(v, joinPath(path, k.Value), fieldType(t, k.Value))
			}
		}
		// Aliases are not followed: errors are reported at the anchor.
	}
	walk(&doc, "", reflect.TypeFor[fileConfig]())
	return idx
}

// fieldType is the type of the struct field with the given YAML key.
func fieldType(t reflect.Type, key string) reflect.Type {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name == key {
			return t.Field(i).Type
		}
	}
	return nil
}

// typeLabel names t the way type errors do: the yaml package prints Go
// types, typeMismatch prints "int" and "duration".
func typeLabel(t reflect.Type) string {
	switch t {
	case nil:
		return ""
	case reflect.TypeFor[fileInt]():
		return "int"
	case reflect.TypeFor[fileDuration]():
		return "duration"
	}
	return t.String()
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// keyPath returns the path of the mapping holding key on line.
func (idx nodeIndex) keyPath(line int, key string) (string, bool) {
	for _, e := range idx {
		if e.isKey && e.line == line && e.value == key {
			return e.path, true
		}
	}
	return "", false
}

// fieldPath returns the path of key on line, or a description of it.
func (idx nodeIndex) fieldPath(line int, key string) string {
	if p, ok := idx.keyPath(line, key); ok {
		return joinPath(p, key)
	}
	return fmt.Sprintf("field %q", key)
}

// valuePath finds the value a type error is about: on line, with tag,
// (possibly truncated to "1234567...") value text, and where the schema
// expects into. Several values can share a line in flow style; the best
// match wins, then the first one on the line.
func (idx nodeIndex) valuePath(line int, tag, value, into string) string {
	prefix, truncated := strings.CutSuffix(value, "...")
	best, bestScore := "", -1
	for _, e := range idx {
		if e.isKey || e.line != line {
			continue
		}
		score := 0
		if e.tag == tag && (e.value == value || truncated && strings.HasPrefix(e.value, prefix)) {
			score++
			if e.into == into {
				score++
			}
		}
		if score > bestScore {
			best, bestScore = e.path, score
		}
	}
	return best
}

// explainSyntaxError reports a syntax error with the line where the problem
// is. The yaml package's parser errors carry the (0-based) line where the
// enclosing block starts, which can be far above the mistake; so find the
// shortest prefix of whole lines that fails with the same problem. Prefixes
// cut before the mistake parse or fail differently, so a binary search finds
// the line in a few parses.
func explainSyntaxError(err error, data []byte) error {
	m := reSyntax.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	problem := m[2]
	var ends []int // ends[i] is the offset just past line i+1
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	failsSame := func(i int) bool {
		pm := reSyntax.FindStringSubmatch(fmt.Sprint(parseAll(data[:ends[i]])))
		return pm != nil && pm[2] == problem
	}
	if i := sort.Search(len(ends), failsSame); i < len(ends) {
		return fmt.Errorf("invalid YAML: line %d: %s", i+1, problem)
	}
	if m[1] != "" {
		return fmt.Errorf("invalid YAML: near line %s: %s", m[1], problem)
	}
	return fmt.Errorf("invalid YAML: %s", problem)
}

// parseAll parses every document in data and returns the first error.
func parseAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
