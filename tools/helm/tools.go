//go:build tools

// Package tools pins the helm command that syncer renders charts with.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
