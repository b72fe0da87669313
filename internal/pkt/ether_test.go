package pkt

import (
	"encoding/binary"
	"testing"
)

func TestIPOrigLen(t *testing.T) {
	v4 := make([]byte, 60)
	v4[0] = 0x45
	binary.BigEndian.PutUint16(v4[2:4], 1500)
	v6 := make([]byte, 60)
	v6[0] = 0x60
	binary.BigEndian.PutUint16(v6[4:6], 1460)
	whole := make([]byte, 40)
	whole[0] = 0x45
	binary.BigEndian.PutUint16(whole[2:4], 40)
	tests := []struct {
		name string
		in   []byte
		want int
	}{
		{"ipv4 truncated", v4, 1500},
		{"ipv6 truncated", v6, 1500},
		{"whole", whole, 0},
		{"empty", nil, 0},
		{"not ip", []byte{0x20, 0, 0, 0}, 0},
	}
	for _, tt := range tests {
		if got := OrigLen(tt.in); got != tt.want {
			t.Errorf("%s: OrigLen = %d, want %d", tt.name, got, tt.want)
		}
	}
}
