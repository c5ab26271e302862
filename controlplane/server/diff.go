package server

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// redacted stands for a private key in diffs.
const redacted = "(redacted)"

// Diff lists what changes from old to new, field by field. List items are
// matched by their identity (ids, protocol/port, address:port), so adding
// a listener is one addition, not a shifted list.
func Diff(old, new *xlbv1.Config) []*xlbv1.Change {
	var out []*xlbv1.Change
	diffMessage("", old.ProtoReflect(), new.ProtoReflect(), &out)
	return out
}

// DiffText renders changes one per line: + added, - removed, ~ modified.
func DiffText(changes []*xlbv1.Change) string {
	if len(changes) == 0 {
		return "no changes\n"
	}
	var b strings.Builder
	for _, c := range changes {
		switch c.GetKind() {
		case xlbv1.Change_added:
			fmt.Fprintf(&b, "+ %s: %s\n", c.GetPath(), short(c.GetNewValue()))
		case xlbv1.Change_removed:
			fmt.Fprintf(&b, "- %s: %s\n", c.GetPath(), short(c.GetOldValue()))
		default:
			fmt.Fprintf(&b, "~ %s: %s -> %s\n", c.GetPath(), short(c.GetOldValue()), short(c.GetNewValue()))
		}
	}
	return b.String()
}

func short(s string) string {
	s = strings.ReplaceAll(s, "\n", `\n`)
	if len(s) > 100 {
		return s[:97] + "..."
	}
	return s
}

func diffMessage(path string, a, b protoreflect.Message, out *[]*xlbv1.Change) {
	fields := a.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		p := join(path, string(fd.Name()))
		switch {
		case fd.IsList():
			diffList(p, fd, a.Get(fd).List(), b.Get(fd).List(), out)
		case fd.IsMap():
			diffMap(p, fd, a.Get(fd).Map(), b.Get(fd).Map(), out)
		case fd.Kind() == protoreflect.MessageKind:
			ha, hb := a.Has(fd), b.Has(fd)
			switch {
			case ha && hb:
				diffMessage(p, a.Get(fd).Message(), b.Get(fd).Message(), out)
			case ha:
				add(out, xlbv1.Change_removed, p, messageText(a.Get(fd).Message()), "")
			case hb:
				add(out, xlbv1.Change_added, p, "", messageText(b.Get(fd).Message()))
			}
		default:
			ha, hb := a.Has(fd), b.Has(fd)
			va, vb := scalarText(fd, a.Get(fd)), scalarText(fd, b.Get(fd))
			if ha == hb && va == vb {
				continue
			}
			if fd.Name() == "key_pem" {
				va, vb = redactText(va), redactText(vb)
			}
			switch {
			case !ha:
				add(out, xlbv1.Change_added, p, "", vb)
			case !hb:
				add(out, xlbv1.Change_removed, p, va, "")
			default:
				add(out, xlbv1.Change_modified, p, va, vb)
			}
		}
	}
}

func diffList(p string, fd protoreflect.FieldDescriptor, a, b protoreflect.List, out *[]*xlbv1.Change) {
	if fd.Kind() != protoreflect.MessageKind {
		va, vb := listText(fd, a), listText(fd, b)
		if va != vb {
			add(out, xlbv1.Change_modified, p, va, vb)
		}
		return
	}
	ka, kb := identities(a), identities(b)
	if ka == nil || kb == nil { // no usable identity: by position
		ka, kb = positions(a.Len()), positions(b.Len())
	}
	inB := make(map[string]int, len(kb))
	for i, k := range kb {
		inB[k] = i
	}
	inA := make(map[string]bool, len(ka))
	for i, k := range ka {
		inA[k] = true
		item := p + "[" + k + "]"
		if j, ok := inB[k]; ok {
			diffMessage(item, a.Get(i).Message(), b.Get(j).Message(), out)
		} else {
			add(out, xlbv1.Change_removed, item, messageText(a.Get(i).Message()), "")
		}
	}
	for j, k := range kb {
		if !inA[k] {
			add(out, xlbv1.Change_added, p+"["+k+"]", "", messageText(b.Get(j).Message()))
		}
	}
}

func diffMap(p string, fd protoreflect.FieldDescriptor, a, b protoreflect.Map, out *[]*xlbv1.Change) {
	vfd := fd.MapValue()
	a.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		item := fmt.Sprintf("%s[%q]", p, k.String())
		if w := b.Get(k); b.Has(k) {
			if va, vb := scalarText(vfd, v), scalarText(vfd, w); va != vb {
				add(out, xlbv1.Change_modified, item, va, vb)
			}
		} else {
			add(out, xlbv1.Change_removed, item, scalarText(vfd, v), "")
		}
		return true
	})
	b.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		if !a.Has(k) {
			add(out, xlbv1.Change_added, fmt.Sprintf("%s[%q]", p, k.String()), "", scalarText(vfd, v))
		}
		return true
	})
}

// identities names each item by what makes it itself; nil when some item
// has no identity or two share one.
func identities(l protoreflect.List) []string {
	out := make([]string, l.Len())
	seen := map[string]bool{}
	for i := range out {
		k := identity(l.Get(i).Message().Interface())
		if k == "" || seen[k] {
			return nil
		}
		seen[k] = true
		out[i] = k
	}
	return out
}

func identity(m proto.Message) string {
	switch v := m.(type) {
	case *xlbv1.LoadBalancer:
		return v.GetId()
	case *xlbv1.ServerGroup:
		return v.GetId()
	case *xlbv1.Certificate:
		return v.GetId()
	case *xlbv1.SnatPool:
		return v.GetId()
	case *xlbv1.Listener:
		return fmt.Sprintf("%s/%d", v.GetProtocol(), v.GetPort())
	case *xlbv1.Server:
		if v.GetPort() == 0 {
			return v.GetAddress()
		}
		return fmt.Sprintf("%s:%d", v.GetAddress(), v.GetPort())
	case *xlbv1.Eip:
		return v.GetPublicIp()
	case *xlbv1.Rule:
		return v.GetDomain() + v.GetPath()
	}
	return ""
}

func positions(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(i)
	}
	return out
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func add(out *[]*xlbv1.Change, kind xlbv1.Change_Kind, path, old, new string) {
	*out = append(*out, &xlbv1.Change{Kind: kind, Path: path, OldValue: old, NewValue: new})
}

func scalarText(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	if fd.Kind() == protoreflect.EnumKind {
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return fmt.Sprint(v.Enum())
	}
	if fd.Kind() == protoreflect.MessageKind {
		return messageText(v.Message())
	}
	return v.String()
}

func listText(fd protoreflect.FieldDescriptor, l protoreflect.List) string {
	parts := make([]string, l.Len())
	for i := range parts {
		parts[i] = scalarText(fd, l.Get(i))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// messageText is the compact JSON of a message, private keys redacted.
func messageText(m protoreflect.Message) string {
	msg := m.Interface()
	if c, ok := msg.(*xlbv1.Certificate); ok && c.GetKeyPem() != "" {
		c = proto.Clone(c).(*xlbv1.Certificate)
		c.KeyPem = redacted
		msg = c
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

func redactText(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}
