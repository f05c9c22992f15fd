package sharding

import (
	"fmt"
	"testing"
)

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ns-%d/binding-%d", i%7, i)
	}
	return out
}

func assign(ks, members []string) map[string]string {
	out := map[string]string{}
	for _, k := range ks {
		out[k] = Owner(k, members)
	}
	return out
}

func TestOwnerIsOrderIndependentAndEmptySafe(t *testing.T) {
	if got := Owner("a/b", nil); got != "" {
		t.Fatalf("Owner with no members = %q, want empty", got)
	}
	for _, k := range keys(50) {
		if a, b := Owner(k, []string{"r0", "r1", "r2"}), Owner(k, []string{"r2", "r0", "r1"}); a != b {
			t.Fatalf("Owner(%s) depends on member order: %s vs %s", k, a, b)
		}
	}
}

func TestOwnerSpreadsEvenly(t *testing.T) {
	members := []string{"vk-0", "vk-1", "vk-2"}
	count := map[string]int{}
	for _, o := range assign(keys(3000), members) {
		count[o]++
	}
	for _, m := range members {
		// 1000 expected each; allow 10%.
		if count[m] < 900 || count[m] > 1100 {
			t.Errorf("member %s owns %d of 3000 keys, want about 1000 (%v)", m, count[m], count)
		}
	}
}

// A join moves keys only to the newcomer, a leave only away from the
// leaver: nothing moves between the members that stay.
func TestOwnerMovesOnlyTheNewcomersOrLeaversKeys(t *testing.T) {
	ks := keys(3000)
	three := assign(ks, []string{"vk-0", "vk-1", "vk-2"})
	four := assign(ks, []string{"vk-0", "vk-1", "vk-2", "vk-3"})
	moved := 0
	for _, k := range ks {
		if three[k] == four[k] {
			continue
		}
		moved++
		if four[k] != "vk-3" {
			t.Fatalf("join moved %s from %s to %s, not to the newcomer", k, three[k], four[k])
		}
	}
	if moved < 600 || moved > 900 {
		t.Errorf("join moved %d of 3000 keys, want about 750 (1/4)", moved)
	}
	two := assign(ks, []string{"vk-0", "vk-2"})
	for _, k := range ks {
		if three[k] != "vk-1" && two[k] != three[k] {
			t.Fatalf("leave of vk-1 moved %s, owned by %s", k, three[k])
		}
	}
}
