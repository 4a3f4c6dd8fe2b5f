package options

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fleet"
)

// Fit are the flags of `tessera fit`: a replica given by its vGPU request,
// or a workload file.
type Fit struct {
	VGPUs    int
	Memory   string
	Cores    int
	Replicas int32
	File     string
	Output   string
}

// AddFlags registers fit's flags.
func (f *Fit) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&f.VGPUs, "vgpu", 0, "vGPUs (distinct GPUs) per replica (default 1 when --memory or --cores is given).")
	fs.StringVar(&f.Memory, "memory", "", "GPU memory per replica, a quantity (40Gi, 10240Mi) or a number of MiB; split evenly over its vGPUs.")
	fs.IntVar(&f.Cores, "cores", 0, "GPU cores per replica, percent of one GPU; split evenly over its vGPUs.")
	fs.Int32Var(&f.Replicas, "replicas", 0, "Replicas wanted (default: the workload file's count); says whether the fleet has room for them.")
	fs.StringVarP(&f.File, "filename", "f", "", "A Deployment, StatefulSet, Job or other workload file (- for standard input) whose pod template is the replica.")
	fs.StringVarP(&f.Output, "output", "o", "", "Output format: json or yaml (default: a table).")
}

// Request validates the flags and returns the replica to fit.
func (f *Fit) Request(cfg config.Config) (fleet.FitRequest, error) {
	if err := ValidateOutput(f.Output, false); err != nil {
		return fleet.FitRequest{}, err
	}
	if f.Replicas < 0 {
		return fleet.FitRequest{}, fmt.Errorf("--replicas must not be negative, not %d", f.Replicas)
	}
	byFlags := f.VGPUs != 0 || f.Memory != "" || f.Cores != 0
	switch {
	case f.File != "" && byFlags:
		return fleet.FitRequest{}, errors.New("give either -f or --vgpu/--memory/--cores, not both")
	case f.File != "":
		return f.fromFile()
	case !byFlags:
		return fleet.FitRequest{}, errors.New("say what one replica asks for: --vgpu, --memory and --cores, or -f workload.yaml")
	}
	shape := fleet.Shape{VGPUs: f.VGPUs, Memory: f.Memory, Cores: f.Cores}
	template, err := shape.Template(cfg.Resources)
	if err != nil {
		return fleet.FitRequest{}, fmt.Errorf("the replica's %w", err)
	}
	return fleet.FitRequest{Template: template, Replicas: f.Replicas}, nil
}

func (f *Fit) fromFile() (fleet.FitRequest, error) {
	data, err := readFile(f.File)
	if err != nil {
		return fleet.FitRequest{}, fmt.Errorf("read -f %s: %w", f.File, err)
	}
	w, err := fleet.ReadWorkload(data)
	if err != nil {
		return fleet.FitRequest{}, fmt.Errorf("-f %s: %w", f.File, err)
	}
	req := fleet.FitRequest{Template: w.Template, Replicas: w.Replicas}
	if f.Replicas > 0 {
		req.Replicas = f.Replicas
	}
	return req, nil
}

// readLimited reads at most fleet.MaxWorkloadBytes+1 bytes, so that
// ReadWorkload can say the file is too large.
func readLimited(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, fleet.MaxWorkloadBytes+1))
}
