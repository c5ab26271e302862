package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// EncodeYAML writes cfg as a YAML file that Decode reads back: the JSON
// mapping with 64-bit integers as numbers (protojson quotes them, which
// the YAML rules refuse). A certificate whose PEM is inline is written
// without its file paths: the PEM is what runs, and a private key left out
// (as the control API returns certificates) is kept by xlbd.
func EncodeYAML(cfg *xlbv1.Config) ([]byte, error) {
	cfg = proto.Clone(cfg).(*xlbv1.Config)
	for _, c := range cfg.GetCertificates() {
		if c.GetCertPem() != "" {
			c.CertFile, c.KeyFile, c.CrlFile = "", "", ""
		}
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	tree, err = numbers(tree, cfg.ProtoReflect().Descriptor(), nil)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(tree)
}

// numbers walks the JSON tree along the schema, turning every number (and
// every quoted 64-bit integer) into a Go number yaml writes bare.
func numbers(v any, md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if md == nil {
			return x, nil
		}
		for k, val := range x {
			f := md.Fields().ByName(protoreflect.Name(k))
			if f == nil {
				return nil, fmt.Errorf("%s: no field %q", md.FullName(), k)
			}
			var err error
			switch {
			case f.IsMap():
				m, _ := val.(map[string]any)
				for mk, mv := range m {
					if m[mk], err = numbers(mv, messageOf(f.MapValue()), f.MapValue()); err != nil {
						return nil, err
					}
				}
			case f.IsList():
				l, _ := val.([]any)
				for i, item := range l {
					if l[i], err = numbers(item, messageOf(f), f); err != nil {
						return nil, err
					}
				}
			default:
				if x[k], err = numbers(val, messageOf(f), f); err != nil {
					return nil, err
				}
			}
		}
		return x, nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u, nil
		}
		return x.Float64()
	case string:
		if fd == nil {
			return x, nil
		}
		switch fd.Kind() {
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			return strconv.ParseInt(x, 10, 64)
		case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			return strconv.ParseUint(x, 10, 64)
		}
	}
	return v, nil
}

// messageOf is the field's message type, nil for scalars and for the
// well-known types protojson writes as strings (Duration).
func messageOf(fd protoreflect.FieldDescriptor) protoreflect.MessageDescriptor {
	if fd.Kind() != protoreflect.MessageKind || fd.Message().FullName() == "google.protobuf.Duration" {
		return nil
	}
	return fd.Message()
}
