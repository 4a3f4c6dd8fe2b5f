//go:build !kubernetes_protomessage_one_more_release

package main

// Karmada v1.18.0's estimator protobuf types need the build tag
// kubernetes_protomessage_one_more_release; without it the binary panics
// when it registers them. This file turns that into a compile error that
// names the tag (build with make, or go build -tags ...).
var _ = mustBuildWithTag_kubernetes_protomessage_one_more_release
