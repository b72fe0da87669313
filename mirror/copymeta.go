package mirror

import (
	"encoding/binary"
	"time"
)

// kernelTime returns the time of a kernel timestamp in seconds and
// microseconds (NFULA_TIMESTAMP, NFQA_TIMESTAMP), or fallback when the
// message had none.
func kernelTime(has bool, sec, usec uint64, fallback time.Time) time.Time {
	if !has || sec == 0 && usec == 0 {
		return fallback
	}
	return time.Unix(int64(sec), int64(usec)*1000)
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// ruleIDFromPrefix returns ID from a log prefix "nfm:ID", or -1.
func ruleIDFromPrefix[T string | []byte](p T) int {
	const tag = "nfm:"
	if len(p) <= len(tag) || string(p[:len(tag)]) != tag {
		return -1
	}
	id := 0
	for i := len(tag); i < len(p); i++ {
		c := p[i]
		if c < '0' || c > '9' || id > 1<<24 {
			return -1
		}
		id = id*10 + int(c-'0')
	}
	return id
}
