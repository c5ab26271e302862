// Package config loads the YAML configuration into the xlb.v1 schema, applies
// the documented defaults and validates the result.
//
// Load is the whole pipeline: Decode (YAML to proto, strict), certificate
// files read into the *_pem fields, WithDefaults, Validate. Every stage
// collects all the problems it finds and reports them as Errors, one
// FieldError per problem, each naming the field by its path.
package config

import (
	"fmt"
	"strconv"
	"strings"
)

// FieldError is one problem with one field.
type FieldError struct {
	// Path names the field the way the YAML writes it:
	// load_balancers[0].listeners[1].port, load_balancers[0].tags["env"].
	// Empty for the document as a whole.
	Path string
	// Msg says which rule is broken.
	Msg string
	// Line is the 1-based line in the YAML source; 0 when not known.
	Line int
	// Hint says how to fix it, when there is something to say.
	Hint string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Errors is every problem found in a configuration, in document order.
type Errors []*FieldError

// Error returns one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find a single *FieldError.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// errorList collects FieldErrors; err returns nil when there are none.
type errorList struct{ errs Errors }

func (l *errorList) add(path string, format string, args ...any) {
	l.errs = append(l.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	return l.errs
}

// Path building: field names joined by dots, list indexes in brackets, map
// keys quoted in brackets.

func field(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func index(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

func key(parent, k string) string { return parent + "[" + strconv.Quote(k) + "]" }

// parentPath drops the last element of a path ("" when none is left).
func parentPath(p string) string {
	switch {
	case strings.HasSuffix(p, `"]`):
		return p[:strings.LastIndex(p, `["`)]
	case strings.HasSuffix(p, "]"):
		return p[:strings.LastIndexByte(p, '[')]
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}
