package env

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func chaosSpec(seed uint64, faults int) ChaosSpec {
	return ChaosSpec{
		Seed: seed, Faults: faults, Members: ChaosMembers(), Workloads: ChaosWorkloads("default"), MinReplicas: 4,
		Gap: [2]time.Duration{time.Second, 5 * time.Second}, Down: [2]time.Duration{time.Second, 8 * time.Second},
	}
}

// TestPlanChaos: a seed fixes the plan; a short run has one fault of each
// kind; no two faults hold one target (a member's servers count as one)
// at once; every target exists; each workload ends at its full count
// during the last fault, and never leaves [MinReplicas, Replicas].
func TestPlanChaos(t *testing.T) {
	for _, tc := range []struct {
		seed   uint64
		faults int
	}{{1, ShortChaosFaults}, {42, ShortChaosFaults}, {7, 100}, {99, 1}} {
		spec := chaosSpec(tc.seed, tc.faults)
		plan, err := PlanChaos(spec)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := PlanChaos(spec)
		if !reflect.DeepEqual(plan, again) {
			t.Errorf("seed %d: two plans differ", tc.seed)
		}
		if other, _ := PlanChaos(chaosSpec(tc.seed+1, tc.faults)); reflect.DeepEqual(plan.Faults, other.Faults) {
			t.Errorf("seeds %d and %d plan the same faults", tc.seed, tc.seed+1)
		}
		if len(plan.Faults) != tc.faults {
			t.Fatalf("seed %d: %d faults, want %d", tc.seed, len(plan.Faults), tc.faults)
		}
		kinds := map[FaultKind]int{}
		for i, f := range plan.Faults {
			kinds[f.Kind]++
			m := slices.IndexFunc(spec.Members, func(m MemberSpec) bool { return m.Name == f.Member })
			if m < 0 || (f.Kind.onNode() != (f.Node != "")) {
				t.Errorf("seed %d: fault %+v has no such target", tc.seed, f)
			}
			if f.Down < spec.Down[0] || f.Down > spec.Down[1] {
				t.Errorf("seed %d: fault %+v is down outside %v", tc.seed, f, spec.Down)
			}
			for _, g := range plan.Faults[:i] {
				if g.busyKey() == f.busyKey() && f.At < g.At+g.Down {
					t.Errorf("seed %d: %s at %s overlaps %s at %s for %s", tc.seed, f.Target(), f.At, g.Target(), g.At, g.Down)
				}
			}
		}
		if tc.faults == ShortChaosFaults && len(kinds) != len(FaultKinds) {
			t.Errorf("seed %d: short run has kinds %v, want each of %v once", tc.seed, kinds, FaultKinds)
		}
		last := plan.Faults[len(plan.Faults)-1].At
		final := map[string]int32{}
		for _, s := range plan.Scales {
			w := spec.Workloads[slices.IndexFunc(spec.Workloads, func(w Workload) bool { return w.Name == s.Workload })]
			if s.Replicas < spec.MinReplicas || s.Replicas > w.Replicas || s.At > last {
				t.Errorf("seed %d: scale step %+v outside [%d, %d] or after the last fault (%s)", tc.seed, s, spec.MinReplicas, w.Replicas, last)
			}
			final[s.Workload] = s.Replicas
		}
		for _, w := range spec.Workloads {
			if final[w.Name] != w.Replicas {
				t.Errorf("seed %d: %s ends at %d replicas, want %d", tc.seed, w.Name, final[w.Name], w.Replicas)
			}
		}
	}
}

func TestPlanChaosRejectsBadSpecs(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*ChaosSpec)
		want string
	}{
		{"no faults", func(s *ChaosSpec) { s.Faults = 0 }, "need faults"},
		{"no members", func(s *ChaosSpec) { s.Members = nil }, "need faults"},
		{"no workloads", func(s *ChaosSpec) { s.Workloads = nil }, "need faults"},
		{"zero gap", func(s *ChaosSpec) { s.Gap[0] = 0 }, "not 0 < min <= max"},
		{"inverted outage", func(s *ChaosSpec) { s.Down = [2]time.Duration{2 * time.Second, time.Second} }, "not 0 < min <= max"},
	} {
		spec := chaosSpec(1, 3)
		tc.edit(&spec)
		if _, err := PlanChaos(spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestParseChaosSettings(t *testing.T) {
	drawn := func() uint64 { return 12345 }
	for _, tc := range []struct {
		seed, faults string
		wantSeed     uint64
		wantFaults   int
		wantErr      string
	}{
		{"", "", 12345, ShortChaosFaults, ""},
		{"987", "", 987, ShortChaosFaults, ""},
		{"", "100", 12345, 100, ""},
		{"18446744073709551615", "1", 1<<64 - 1, 1, ""},
		{"-1", "", 0, 0, "is not a seed"},
		{"0x10", "", 0, 0, "is not a seed"},
		{"", "0", 0, 0, "from 1 to"},
		{"", "many", 0, 0, "from 1 to"},
		{"", "2001", 0, 0, "from 1 to"},
	} {
		seed, faults, err := ParseChaosSettings(tc.seed, tc.faults, drawn)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("(%q, %q): error %v, want one containing %q", tc.seed, tc.faults, err, tc.wantErr)
			}
			continue
		}
		if err != nil || seed != tc.wantSeed || faults != tc.wantFaults {
			t.Errorf("(%q, %q) = %d, %d, %v; want %d, %d", tc.seed, tc.faults, seed, faults, err, tc.wantSeed, tc.wantFaults)
		}
	}
}

// FuzzParseChaosSettings: any environment either gives a seed and a count
// a plan can be drawn from, or an error naming the variable.
func FuzzParseChaosSettings(f *testing.F) {
	f.Add("", "")
	f.Add("42", "6")
	f.Add("-0", "1e3")
	f.Fuzz(func(t *testing.T, seed, faults string) {
		s, n, err := ParseChaosSettings(seed, faults, func() uint64 { return 1 })
		if err != nil {
			if !strings.Contains(err.Error(), ChaosSeedEnv) && !strings.Contains(err.Error(), ChaosFaultsEnv) {
				t.Fatalf("error %v names neither variable", err)
			}
			return
		}
		if n < 1 || n > maxChaosFaults {
			t.Fatalf("count %d accepted", n)
		}
		if _, err := PlanChaos(chaosSpec(s, min(n, 50))); err != nil {
			t.Fatalf("seed %d, %d faults: %v", s, n, err)
		}
	})
}
