package main

import (
	"context"
	"errors"
	"io"
)

func runHTTP(context.Context, []string, io.Writer) error { return errors.New("not built yet") }

func runTCP(context.Context, []string, io.Writer) error { return errors.New("not built yet") }

func runUDP(context.Context, []string, io.Writer) error { return errors.New("not built yet") }
