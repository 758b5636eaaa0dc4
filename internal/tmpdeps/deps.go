// Package tmpdeps pins the modules issue 7's work imports until it does;
// it is removed once they are imported for real.
package tmpdeps

import (
	_ "github.com/compose-spec/compose-go/v2/loader"
	_ "github.com/testcontainers/testcontainers-go"
	_ "github.com/testcontainers/testcontainers-go/modules/kafka"
	_ "github.com/testcontainers/testcontainers-go/modules/mongodb"
	_ "github.com/testcontainers/testcontainers-go/modules/postgres"
	_ "sigs.k8s.io/yaml"
)
