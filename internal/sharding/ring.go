package sharding

import (
	"crypto/sha256"
	"encoding/binary"
)

// Owner picks the member that runs key by rendezvous (highest random
// weight) hashing: every member scores hash(member, key) and the highest
// wins. When a member joins, it wins only the keys it now outscores
// everyone on (about 1/N of them); when one leaves, only its keys move,
// each to its runner-up. No ring, virtual nodes or shared state are
// needed, and every replica computes the same answer from the same member
// list. It returns "" when members is empty.
func Owner(key string, members []string) string {
	best, bestScore := "", uint64(0)
	for _, m := range members {
		s := score(m, key)
		// Ties (astronomically rare) go to the smaller name, so that
		// the answer never depends on the order of members.
		if best == "" || s > bestScore || (s == bestScore && m < best) {
			best, bestScore = m, s
		}
	}
	return best
}

func score(member, key string) uint64 {
	h := sha256.New()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return binary.BigEndian.Uint64(h.Sum(nil)[:8])
}
