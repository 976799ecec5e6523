//go:build tools

// Package tools pins the sops command that syncer decrypts SOPS-encrypted manifests with.
package tools

import _ "github.com/getsops/sops/v3/cmd/sops"
