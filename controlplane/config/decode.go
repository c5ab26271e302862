package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// maxAliasNodes bounds the work of one document beyond its own size: a few
// kilobytes of YAML anchors and aliases can stand for billions of nodes.
const maxAliasNodes = 1 << 20

// Decode reads a YAML configuration into the schema. The YAML is the proto's
// JSON mapping: snake_case field names, enum values by name, durations as Go
// duration strings ("2s", "1h30m"). Every unknown field, wrong kind, bad enum
// value or bad duration is reported, with its path and line, as Errors. An
// empty document is an empty configuration. No defaults are applied and
// nothing is validated beyond the types.
func Decode(data []byte) (*xlbv1.Config, error) {
	cfg, _, err := decode(data)
	return cfg, err
}

// lineIndex maps the path of every field and list item written in the
// document to its line.
type lineIndex map[string]int

// lineOf returns the line of path, or of its nearest written ancestor.
func (li lineIndex) lineOf(path string) int {
	for {
		if l, ok := li[path]; ok {
			return l
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

func decode(data []byte) (*xlbv1.Config, lineIndex, error) {
	root, ferr := parseYAML(data)
	if ferr != nil {
		return nil, nil, Errors{ferr}
	}
	cfg := &xlbv1.Config{}
	// Without aliases a document has fewer nodes than bytes.
	d := &decoder{lines: lineIndex{}, budget: maxAliasNodes + len(data)}
	if root == nil || isNull(root) {
		return cfg, d.lines, nil
	}
	d.lines[""] = root.Line
	obj, ok := d.message("", root, cfg.ProtoReflect().Descriptor())
	if len(d.errs.errs) > 0 {
		return nil, d.lines, d.errs.errs
	}
	if !ok {
		return cfg, d.lines, nil
	}
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, d.lines, Errors{{Msg: fmt.Sprintf("internal error: encode JSON: %v", err)}}
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, cfg); err != nil {
		// The walk above checks everything protojson checks; reaching this
		// is a bug in the walk, still reported rather than hidden.
		return nil, d.lines, Errors{{Msg: fmt.Sprintf("internal error: protojson: %v", err)}}
	}
	return cfg, d.lines, nil
}

// parseYAML returns the root node of the only document in data (nil when the
// document is empty).
func parseYAML(data []byte) (root *yaml.Node, ferr *FieldError) {
	defer func() {
		// The parser is third-party code fed with user input: a panic in it
		// must not take the daemon down.
		if r := recover(); r != nil {
			root, ferr = nil, &FieldError{Msg: fmt.Sprintf("YAML parser failed: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &FieldError{Msg: "a second YAML document (---) is not allowed: one file is one configuration", Line: extra.Line}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(err)
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

// syntaxError turns "yaml: line 3: did not find expected key" into a
// FieldError on line 3.
func syntaxError(err error) *FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ":"); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, strings.TrimSpace(after)
			}
		}
	}
	return &FieldError{Msg: "YAML syntax error: " + msg, Line: line}
}

// decoder walks a YAML node tree along a message descriptor and builds the
// equivalent protojson value, collecting every problem on the way.
type decoder struct {
	errs    errorList
	lines   lineIndex
	visited int
	budget  int
	aborted bool
}

func (d *decoder) fail(path string, line int, hint, format string, args ...any) {
	d.errs.errs = append(d.errs.errs, &FieldError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// enter resolves aliases and counts the node against the document budget;
// false means stop.
func (d *decoder) enter(n *yaml.Node) (*yaml.Node, bool) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	d.visited++
	if d.visited > d.budget {
		if !d.aborted {
			d.aborted = true
			d.fail("", n.Line, "", "the document expands to more than %d nodes: too many aliases", d.budget)
		}
		return n, false
	}
	return n, true
}

func (d *decoder) duplicate(path string, line, first int) {
	if line == first {
		d.fail(path, line, "", "duplicate key")
		return
	}
	d.fail(path, line, "", "duplicate key: first set on line %d", first)
}

type entry struct{ key, value *yaml.Node }

// entries lists a mapping's key/value pairs, with YAML merge keys (<<)
// expanded: explicit keys win over merged ones, earlier merges over later.
func (d *decoder) entries(path string, n *yaml.Node) []entry {
	var own, merged []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergeSources(path, v)...)
			continue
		}
		own = append(own, entry{k, v})
	}
	if len(merged) == 0 {
		return own
	}
	have := make(map[string]bool, len(own))
	for _, e := range own {
		have[e.key.Value] = true
	}
	for _, e := range merged {
		if !have[e.key.Value] {
			have[e.key.Value] = true
			own = append(own, e)
		}
	}
	return own
}

func (d *decoder) mergeSources(path string, v *yaml.Node) []entry {
	v, ok := d.enter(v)
	if !ok {
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return d.entries(path, v)
	case yaml.SequenceNode:
		var out []entry
		for _, item := range v.Content {
			item, ok := d.enter(item)
			if !ok {
				return out
			}
			if item.Kind != yaml.MappingNode {
				d.fail(path, item.Line, "", "a merge key (<<) takes mappings, got %s", describe(item))
				continue
			}
			out = append(out, d.entries(path, item)...)
		}
		return out
	}
	d.fail(path, v.Line, "", "a merge key (<<) takes a mapping or a list of mappings, got %s", describe(v))
	return nil
}

// mapping resolves aliases and requires a mapping node.
func (d *decoder) mapping(path string, n *yaml.Node) (*yaml.Node, bool) {
	n, ok := d.enter(n)
	if !ok {
		return nil, false
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "", "mapping expected, got %s", describe(n))
		return nil, false
	}
	return n, true
}

// message decodes a mapping into a JSON object of md's fields.
func (d *decoder) message(path string, n *yaml.Node, md protoreflect.MessageDescriptor) (map[string]any, bool) {
	n, ok := d.mapping(path, n)
	if !ok {
		return nil, false
	}
	obj := map[string]any{}
	seen := map[string]int{}
	oneofs := map[protoreflect.FullName]string{}
	for _, e := range d.entries(path, n) {
		if d.aborted {
			return nil, false
		}
		k, _ := d.enter(e.key)
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k.Line, "", "a field name must be a plain word, got %s", describe(k))
			continue
		}
		name := k.Value
		p := field(path, name)
		if first, dup := seen[name]; dup {
			d.duplicate(p, k.Line, first)
			continue
		}
		seen[name] = k.Line
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			hint := ""
			if s := suggest(name, fieldNames(md)); s != "" {
				hint = "did you mean " + s + "?"
			}
			d.fail(p, k.Line, hint, "unknown field")
			continue
		}
		d.lines[p] = k.Line
		if isNull(e.value) {
			continue // null is "not set", as in protojson
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if other, set := oneofs[od.FullName()]; set {
				d.fail(p, k.Line, "", "%s is already set: only one of them may be", other)
				continue
			}
			oneofs[od.FullName()] = name
		}
		if v, ok := d.field(p, e.value, fd); ok {
			obj[name] = v
		}
	}
	return obj, true
}

func fieldNames(md protoreflect.MessageDescriptor) []string {
	names := make([]string, md.Fields().Len())
	for i := range names {
		names[i] = string(md.Fields().Get(i).Name())
	}
	return names
}

// field decodes one field's value: a list, a map or a single value.
func (d *decoder) field(path string, n *yaml.Node, fd protoreflect.FieldDescriptor) (any, bool) {
	switch {
	case fd.IsMap():
		return d.mapField(path, n, fd)
	case fd.IsList():
		return d.listField(path, n, fd)
	}
	return d.value(path, n, fd)
}

func (d *decoder) listField(path string, n *yaml.Node, fd protoreflect.FieldDescriptor) (any, bool) {
	n, ok := d.enter(n)
	if !ok {
		return nil, false
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n.Line, "write a list: [a, b] or one \"- item\" per line", "list expected, got %s", describe(n))
		return nil, false
	}
	list := make([]any, 0, len(n.Content))
	good := true
	for i, item := range n.Content {
		p := index(path, i)
		d.lines[p] = item.Line
		if isNull(item) {
			d.fail(p, item.Line, "", "empty list item")
			good = false
			continue
		}
		v, ok := d.value(p, item, fd)
		good = good && ok
		list = append(list, v)
	}
	return list, good
}

func (d *decoder) mapField(path string, n *yaml.Node, fd protoreflect.FieldDescriptor) (any, bool) {
	n, ok := d.mapping(path, n)
	if !ok {
		return nil, false
	}
	obj := map[string]any{}
	seen := map[string]int{}
	good := true
	for _, e := range d.entries(path, n) {
		k, _ := d.enter(e.key)
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.fail(path, k.Line, "", "a key must be a plain value, got %s", describe(k))
			good = false
			continue
		}
		p := key(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.duplicate(p, k.Line, first)
			good = false
			continue
		}
		seen[k.Value] = k.Line
		d.lines[p] = k.Line
		if _, ok := d.scalar(p, k, fd.MapKey()); !ok {
			good = false
			continue
		}
		if isNull(e.value) {
			d.fail(p, k.Line, "", "a value is required")
			good = false
			continue
		}
		v, ok := d.value(p, e.value, fd.MapValue())
		good = good && ok
		obj[k.Value] = v
	}
	return obj, good
}

// value decodes a single (not repeated) value of fd's type.
func (d *decoder) value(path string, n *yaml.Node, fd protoreflect.FieldDescriptor) (any, bool) {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		if fd.Message().FullName() == "google.protobuf.Duration" {
			return d.duration(path, n)
		}
		return d.message(path, n, fd.Message())
	}
	return d.scalar(path, n, fd)
}

func (d *decoder) scalar(path string, n *yaml.Node, fd protoreflect.FieldDescriptor) (any, bool) {
	n, ok := d.enter(n)
	if !ok {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n.Line, "", "%s expected, got %s", kindName(fd), describe(n))
		return nil, false
	}
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		// Numbers and booleans are taken as written: `min_version: 1.2` is "1.2".
		return n.Value, true
	case protoreflect.BoolKind:
		if n.ShortTag() == "!!bool" {
			if b, err := strconv.ParseBool(strings.ToLower(n.Value)); err == nil {
				return b, true
			}
		}
		d.fail(path, n.Line, "write true or false", "boolean expected, got %s", describe(n))
	case protoreflect.EnumKind:
		return d.enum(path, n, fd.Enum())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return d.integer(path, n, big.NewInt(math.MinInt32), big.NewInt(math.MaxInt32))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return d.integer(path, n, big.NewInt(math.MinInt64), big.NewInt(math.MaxInt64))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return d.integer(path, n, new(big.Int), new(big.Int).SetUint64(math.MaxUint32))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return d.integer(path, n, new(big.Int), new(big.Int).SetUint64(math.MaxUint64))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if t := n.ShortTag(); t == "!!int" || t == "!!float" {
			if f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), true
			}
		}
		d.fail(path, n.Line, "", "number expected, got %s", describe(n))
	default:
		d.fail(path, n.Line, "", "unsupported field kind %s", fd.Kind())
	}
	return nil, false
}

func (d *decoder) integer(path string, n *yaml.Node, lo, hi *big.Int) (any, bool) {
	// The YAML resolver calls an integer beyond 64 bits a float: still
	// parse it, so that the message says "out of range".
	v, ok := new(big.Int).SetString(n.Value, 0)
	if tag := n.ShortTag(); !ok || tag != "!!int" && tag != "!!float" {
		hint := ""
		if tag == "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			hint = "write numbers without quotes"
		}
		d.fail(path, n.Line, hint, "whole number expected, got %s", describe(n))
		return nil, false
	}
	if v.Cmp(lo) < 0 || v.Cmp(hi) > 0 {
		d.fail(path, n.Line, "", "%s is out of range %s..%s", n.Value, lo, hi)
		return nil, false
	}
	return json.Number(v.String()), true
}

func (d *decoder) enum(path string, n *yaml.Node, ed protoreflect.EnumDescriptor) (any, bool) {
	if v := ed.Values().ByName(protoreflect.Name(n.Value)); v != nil && v.Number() != 0 {
		return n.Value, true
	}
	names := enumNames(ed)
	hint := ""
	if s := suggest(n.Value, names); s != "" {
		hint = "did you mean " + s + "?"
	}
	d.fail(path, n.Line, hint, "%q is not one of %s", n.Value, strings.Join(names, ", "))
	return nil, false
}

// enumNames lists the values a user may write: all but the zero "unset" value.
func enumNames(ed protoreflect.EnumDescriptor) []string {
	var names []string
	for i := 0; i < ed.Values().Len(); i++ {
		if v := ed.Values().Get(i); v.Number() != 0 {
			names = append(names, string(v.Name()))
		}
	}
	return names
}

const durationHint = `write a duration with its unit, e.g. "2s", "500ms", "5m" or "1h30m"`

// duration accepts a Go duration string and returns protojson's form of it.
func (d *decoder) duration(path string, n *yaml.Node) (any, bool) {
	n, ok := d.enter(n)
	if !ok {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n.Line, durationHint, "duration expected, got %s", describe(n))
		return nil, false
	}
	if t := n.ShortTag(); t == "!!int" || t == "!!float" {
		d.fail(path, n.Line, durationHint, "%s is a bare number, not a duration", n.Value)
		return nil, false
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.fail(path, n.Line, durationHint, "%q is not a duration", n.Value)
		return nil, false
	}
	return protoDuration(dur), true
}

// protoDuration formats d the way protojson writes a Duration: "300s", "0.5s".
func protoDuration(d time.Duration) string {
	sign, u := "", uint64(d)
	if d < 0 {
		sign, u = "-", -u
	}
	s := sign + strconv.FormatUint(u/1e9, 10)
	if frac := u % 1e9; frac != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%09d", frac), "0")
	}
	return s + "s"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names a node's value for an error message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!bool":
			return n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "an alias"
}

func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		return "text"
	case protoreflect.BoolKind:
		return "boolean"
	case protoreflect.EnumKind:
		return "one of " + strings.Join(enumNames(fd.Enum()), ", ")
	}
	return "number"
}

// suggest returns the candidate closest to name when it is close enough to
// be a typo ("helth_check" -> "health_check", "healthCheck" -> "health_check").
func suggest(name string, candidates []string) string {
	fold := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	best, bestDist := "", math.MaxInt
	for _, c := range candidates {
		if fold(c) == fold(name) {
			return c
		}
		if dist := editDistance(strings.ToLower(name), c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	if bestDist <= 1 && len(name) > 2 || bestDist <= 3 && bestDist*3 <= len(name) {
		return best
	}
	return ""
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent bytes.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
