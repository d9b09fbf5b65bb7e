// Package firmware keeps signed firmware images and the rules of each
// device model: artifacts (the image's bytes in a content-addressed blob
// store on disk, its record in etcd), the trusted signing keys that every
// upload must verify with, and per-model policies (a minimum version and
// blocked versions, for recalls).
//
// Rollouts, which install artifacts on devices, live in firmware/rollout;
// the blob store in firmware/blob; what a signature covers in
// firmware/manifest, which the agent shares.
package firmware
