// Package configs holds the example configurations; demo.yaml is embedded
// as the lab demo's default configuration.
package configs

import _ "embed"

// demo is a string so that it cannot be changed: DemoYAML hands out copies.
//
//go:embed demo.yaml
var demo string

// DemoYAML returns the demo configuration; each call returns a new copy.
func DemoYAML() []byte { return []byte(demo) }
