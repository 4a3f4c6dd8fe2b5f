package env

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/test/cluster"
)

// FaultKind is what a chaos fault kills and restarts.
type FaultKind string

// The faults of a chaos run: a member's servers, its in-process Tessera
// components, and a node's kubelet with its pods running.
const (
	FaultEtcd      FaultKind = "etcd"
	FaultAPIServer FaultKind = "kube-apiserver"
	FaultExtender  FaultKind = "extender"
	FaultAgent     FaultKind = "node-agent"
	FaultEstimator FaultKind = "estimator"
	FaultKubelet   FaultKind = "kubelet"
)

// FaultKinds lists every kind, in the order a plan's first round draws from.
var FaultKinds = []FaultKind{FaultEtcd, FaultAPIServer, FaultExtender, FaultAgent, FaultEstimator, FaultKubelet}

// onNode says whether the kind is one node's component.
func (k FaultKind) onNode() bool { return k == FaultAgent || k == FaultKubelet }

// Fault is one kill and restart: At after the run starts, the target is
// killed; Down later it is started again.
type Fault struct {
	Kind   FaultKind
	Member string
	Node   string // the node of a node-agent or kubelet fault
	At     time.Duration
	Down   time.Duration
}

// Target names what the fault kills.
func (f Fault) Target() string {
	if f.Kind.onNode() {
		return fmt.Sprintf("%s %s/%s", f.Kind, f.Member, f.Node)
	}
	return fmt.Sprintf("%s %s", f.Kind, f.Member)
}

// busyKey is what two faults must not hold at once. A member's etcd and
// kube-apiserver share one: a kube-apiserver cannot become ready while its
// etcd is down, so overlapping them would only test the wait.
func (f Fault) busyKey() string {
	switch f.Kind {
	case FaultEtcd, FaultAPIServer:
		return f.Member + "/servers"
	}
	return f.Target()
}

// ScaleStep sets a workload's replicas on Karmada At after the run starts.
type ScaleStep struct {
	At       time.Duration
	Workload string
	Replicas int32
}

// ChaosSpec says what PlanChaos draws from.
type ChaosSpec struct {
	Seed    uint64
	Faults  int
	Members []MemberSpec
	// Workloads are scaled between MinReplicas and their Replicas; the last
	// scale step of each restores its Replicas, during the last fault.
	Workloads   []Workload
	MinReplicas int32
	// Gap bounds the time between two faults' starts, Down a fault's
	// outage; both [min, max].
	Gap, Down [2]time.Duration
}

// ChaosPlan is a whole run, fixed by its seed.
type ChaosPlan struct {
	Seed   uint64
	Faults []Fault
	Scales []ScaleStep
}

// PlanChaos draws a run from spec.Seed alone, so that a seed replays it.
// Fault kinds come in rounds, each round every kind once in a random
// order, so that a run of len(FaultKinds) faults has one of each; targets,
// start times, outages and scale steps are random. Two faults never hold
// one busyKey at once: a later one starts after the earlier one ended.
func PlanChaos(spec ChaosSpec) (ChaosPlan, error) {
	if spec.Faults < 1 || len(spec.Members) == 0 || len(spec.Workloads) == 0 {
		return ChaosPlan{}, fmt.Errorf("plan chaos: need faults (%d), members (%d) and workloads (%d)", spec.Faults, len(spec.Members), len(spec.Workloads))
	}
	for _, b := range [][2]time.Duration{spec.Gap, spec.Down} {
		if b[0] <= 0 || b[1] < b[0] {
			return ChaosPlan{}, fmt.Errorf("plan chaos: bounds %v are not 0 < min <= max", b)
		}
	}
	rng := rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))
	between := func(b [2]time.Duration) time.Duration {
		return b[0] + time.Duration(rng.Int64N(int64(b[1]-b[0])+1)).Round(100*time.Millisecond)
	}
	plan := ChaosPlan{Seed: spec.Seed}
	busyUntil := map[string]time.Duration{}
	var round []FaultKind
	at := time.Duration(0)
	for range spec.Faults {
		if len(round) == 0 {
			round = slices.Clone(FaultKinds)
			rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		m := spec.Members[rng.IntN(len(spec.Members))]
		f := Fault{Kind: round[0], Member: m.Name, Down: between(spec.Down)}
		round = round[1:]
		if f.Kind.onNode() {
			f.Node = nodeName(m, rng.IntN(len(m.Nodes)))
		}
		at += between(spec.Gap)
		f.At = max(at, busyUntil[f.busyKey()]+spec.Gap[0])
		busyUntil[f.busyKey()] = f.At + f.Down
		plan.Faults = append(plan.Faults, f)
	}
	slices.SortStableFunc(plan.Faults, func(a, b Fault) int { return int(a.At - b.At) })
	last := plan.Faults[len(plan.Faults)-1].At
	for range max(3, spec.Faults) {
		w := spec.Workloads[rng.IntN(len(spec.Workloads))]
		n := spec.MinReplicas + rng.Int32N(w.Replicas-spec.MinReplicas+1)
		plan.Scales = append(plan.Scales, ScaleStep{At: time.Duration(rng.Int64N(int64(last))), Workload: w.Name, Replicas: n})
	}
	for _, w := range spec.Workloads {
		plan.Scales = append(plan.Scales, ScaleStep{At: last, Workload: w.Name, Replicas: w.Replicas})
	}
	slices.SortStableFunc(plan.Scales, func(a, b ScaleStep) int { return int(a.At - b.At) })
	return plan, nil
}

// FaultRecord is what happened to one fault of a run.
type FaultRecord struct {
	Fault
	Killed, Restarted time.Duration // after the run started; Restarted is when it was ready again
	Err               error         // the kill's or the restart's failure
}

func (r FaultRecord) String() string {
	s := fmt.Sprintf("%-34s killed at %6.1fs, ready again at %6.1fs (planned down %.1fs)",
		r.Target(), r.Killed.Seconds(), r.Restarted.Seconds(), r.Down.Seconds())
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// RunChaos plays the plan: every fault in a goroutine of its own (kill at
// its time, restart after its outage, waiting until the target is ready),
// the scale steps of namespace's workloads in another. It returns once
// everything was restarted, with one record per fault in plan order, and
// the scale steps that failed.
func (e *Env) RunChaos(ctx context.Context, plan ChaosPlan, namespace string) ([]FaultRecord, []error) {
	start := time.Now()
	sleepUntil := func(at time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Until(start.Add(at))):
			return true
		}
	}
	records := make([]FaultRecord, len(plan.Faults))
	// A restart can take longer than its planned outage (a component waits
	// for its member's API server): a fault waits until the one before it
	// on the same target is over, so that it never kills a half-started
	// server. The plan orders them, so the earlier one locks first.
	targets := map[string]*sync.Mutex{}
	for _, f := range plan.Faults {
		if targets[f.busyKey()] == nil {
			targets[f.busyKey()] = &sync.Mutex{}
		}
	}
	var wg sync.WaitGroup
	for i, f := range plan.Faults {
		wg.Go(func() {
			r := FaultRecord{Fault: f}
			defer func() { records[i] = r }()
			if !sleepUntil(f.At) {
				r.Err = ctx.Err()
				return
			}
			target := targets[f.busyKey()]
			target.Lock()
			defer target.Unlock()
			kill, restart, err := e.faultActions(f)
			if err == nil {
				err = kill()
			}
			r.Killed = time.Since(start)
			if err != nil {
				r.Err = fmt.Errorf("kill: %w", err)
				return
			}
			e.logf("chaos: %6.1fs killed %s for %.1fs", r.Killed.Seconds(), f.Target(), f.Down.Seconds())
			if !sleepUntil(r.Killed + f.Down) {
				r.Err = ctx.Err()
			}
			if err := restart(ctx); err != nil {
				r.Err = fmt.Errorf("restart: %w", err)
			}
			r.Restarted = time.Since(start)
			e.logf("chaos: %6.1fs %s ready again", r.Restarted.Seconds(), f.Target())
		})
	}
	var scaleErrs []error
	for _, s := range plan.Scales {
		if !sleepUntil(s.At) {
			scaleErrs = append(scaleErrs, ctx.Err())
			break
		}
		if err := e.Scale(ctx, namespace, s.Workload, s.Replicas); err != nil {
			scaleErrs = append(scaleErrs, err)
			continue
		}
		e.logf("chaos: %6.1fs scaled %s to %d", time.Since(start).Seconds(), s.Workload, s.Replicas)
	}
	wg.Wait()
	return records, scaleErrs
}

// faultActions returns how to kill and restart the fault's target.
func (e *Env) faultActions(f Fault) (kill func() error, restart func(context.Context) error, err error) {
	m := e.Member(f.Member)
	if m == nil {
		return nil, nil, fmt.Errorf("no member %q", f.Member)
	}
	var n *Node
	if f.Kind.onNode() {
		if n = m.Node(f.Node); n == nil {
			return nil, nil, fmt.Errorf("member %s has no node %q", f.Member, f.Node)
		}
	}
	server := func(name string) (func() error, func(context.Context) error, error) {
		return func() error { return m.Cluster().KillServer(name) },
			func(ctx context.Context) error { return m.Cluster().RestartServer(ctx, name) }, nil
	}
	switch f.Kind {
	case FaultEtcd:
		return server(cluster.ServerEtcd)
	case FaultAPIServer:
		return server(cluster.ServerKubeAPIServer)
	case FaultExtender:
		return m.StopExtender, m.StartExtender, nil
	case FaultEstimator:
		return m.StopEstimator, m.RestartEstimator, nil
	case FaultAgent:
		return n.StopAgent, n.StartAgent, nil
	case FaultKubelet:
		return n.StopKubelet, n.StartKubelet, nil
	}
	return nil, nil, fmt.Errorf("unknown fault kind %q", f.Kind)
}

// ChaosMembers is the chaos run's topology: two members of two nodes with
// four 80 GiB GPUs each (A100 in member-a, H100 in member-b), 16 GPUs.
func ChaosMembers() []MemberSpec {
	node := func(model string) NodeSpec { return NodeSpec{GPUs: []config.MockGPU{{Model: model, Count: 4}}} }
	return []MemberSpec{
		{Name: BusyMember, Nodes: []NodeSpec{node("A100-SXM4-80GB"), node("A100-SXM4-80GB")}},
		{Name: IdleMember, Nodes: []NodeSpec{node("H100-SXM5-80GB"), node("H100-SXM5-80GB")}},
	}
}

// ChaosWorkloads are the chaos run's three shapes, 20 replicas each (60):
// a Deployment has one pod template, so mixed shapes are three Deployments.
// At 60 they ask for 960 GiB, 1,000% cores and 80 slots of 1,280 GiB,
// 1,600% and 160: they fit with room to spare when Tessera's estimates
// guide Karmada, and some may wait where Karmada placed them by its
// general estimate alone, while an estimator was down.
func ChaosWorkloads(namespace string) []Workload {
	return []Workload{
		{Namespace: namespace, Name: "chaos-small", Replicas: 20, Request: GPURequest{GPUs: 1, MemoryMiB: 8 * 1024, Cores: 10}},
		{Namespace: namespace, Name: "chaos-medium", Replicas: 20, Request: GPURequest{GPUs: 1, MemoryMiB: 16 * 1024, Cores: 20}},
		{Namespace: namespace, Name: "chaos-pair", Replicas: 20, Request: GPURequest{GPUs: 2, MemoryMiB: 24 * 1024, Cores: 20}},
	}
}

// The chaos run's settings, from the environment.
const (
	// ChaosSeedEnv replays a run: the seed its output printed.
	ChaosSeedEnv = "TESSERA_CHAOS_SEED"
	// ChaosFaultsEnv sets how many faults a run has (`make chaos`: 100).
	ChaosFaultsEnv = "TESSERA_CHAOS_FAULTS"
	// ShortChaosFaults is the short form's count (make test): one of each kind.
	ShortChaosFaults = 6
	// maxChaosFaults bounds a run to what can finish in a test's time.
	maxChaosFaults = 2000
)

// ParseChaosSettings reads the values of ChaosSeedEnv and ChaosFaultsEnv:
// an empty seed is drawn by newSeed, an empty count is ShortChaosFaults.
func ParseChaosSettings(seed, faults string, newSeed func() uint64) (uint64, int, error) {
	s := newSeed()
	if seed != "" {
		var err error
		if s, err = strconv.ParseUint(seed, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("%s=%q is not a seed (an unsigned decimal number, as a run prints it): %w", ChaosSeedEnv, seed, err)
		}
	}
	n := ShortChaosFaults
	if faults != "" {
		var err error
		if n, err = strconv.Atoi(faults); err != nil || n < 1 || n > maxChaosFaults {
			return 0, 0, fmt.Errorf("%s=%q: want a number of faults from 1 to %d", ChaosFaultsEnv, faults, maxChaosFaults)
		}
	}
	return s, n, nil
}
