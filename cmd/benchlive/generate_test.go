//go:build linux

package main

import (
	"reflect"
	"testing"
)

func TestCheckOnce(t *testing.T) {
	t.Parallel()
	ref := []int32{2, 4, 6, 8}
	conns := []*genConn{
		{ids: []int32{2, 4, 6, 8}},    // exact
		{ids: []int32{2, 6, 8}},       // a gap
		{ids: []int32{2, 4, 4, 6, 8}}, // a duplicate
		{ids: []int32{2, 6, 4, 8}},    // out of order
		{ids: []int32{2, 4, 5, 6, 8}}, // one not committed in the window
		{ids: []int32{2, 4, 6}},       // the last one late
	}
	got := checkOnce(conns, ref)
	want := &onceCheck{Reference: 4, Exact: 1, Gaps: 1, Missing: 1, Late: 1, LateScores: 1, Dups: 1, Duplicates: 1, Unordered: 1, Unexpected: 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("checkOnce = %+v, want %+v", got, want)
	}
}

func TestParseReference(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		want []int32
		ok   bool
	}{
		{"reference 1 5 9\n", []int32{1, 5, 9}, true},
		{"reference\n", []int32{}, true},
		{"reference -\n", nil, false},
		{"reference 1 x\n", nil, false},
		{"window 1 2\n", nil, false},
	}
	for _, tt := range tests {
		got, ok := parseReference(tt.line)
		if ok != tt.ok || ok && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseReference(%q) = %v, %v, want %v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}
