//go:build !linux

package main

import (
	"context"
	"errors"
)

func generate(context.Context, genConfig) (genResult, error) {
	return genResult{}, errors.New("the generator needs Linux (sendmmsg)")
}
