package main

import (
	"encoding/json"
	"fmt"
	"io"
)

// nfmStatus is the part of `nfmirror status -json` the benchmark sums.
type nfmStatus struct {
	Destinations []struct {
		Packets uint64 `json:"packets"`
		Errors  uint64 `json:"errors"`
	} `json:"destinations"`
	Channels []struct {
		Received  uint64 `json:"received"`
		SeqGaps   uint64 `json:"seq_gaps"`
		QueueFull uint64 `json:"queue_full"`
	} `json:"channels"`
}

// nfmTotals sums an nfmirror status document over channels and destinations.
type nfmTotals struct {
	Received, SeqGaps, QueueFull, Sent, SendErrors uint64
}

func parseNfmStatus(r io.Reader) (nfmTotals, error) {
	var s nfmStatus
	var t nfmTotals
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return t, fmt.Errorf("decode nfmirror status: %w", err)
	}
	for _, c := range s.Channels {
		t.Received += c.Received
		t.SeqGaps += c.SeqGaps
		t.QueueFull += c.QueueFull
	}
	for _, d := range s.Destinations {
		t.Sent += d.Packets
		t.SendErrors += d.Errors
	}
	return t, nil
}

// runNfmStat prints the totals of the status document on stdin as
// shell-readable numbers: received seq_gaps queue_full sent send_errors.
func runNfmStat(stdin io.Reader, stdout io.Writer) error {
	t, err := parseNfmStatus(stdin)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, t.Received, t.SeqGaps, t.QueueFull, t.Sent, t.SendErrors)
	return err
}
