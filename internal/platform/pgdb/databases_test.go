package pgdb

import "testing"

func TestContextDatabaseURLKeepsEverythingButTheDatabase(t *testing.T) {
	for _, c := range []struct{ base, ctx, name, url string }{
		{"postgres://shop:pw@127.0.0.1:5432/shop?sslmode=disable", "orders", "shop_orders", "postgres://shop:pw@127.0.0.1:5432/shop_orders?sslmode=disable"},
		{"postgresql://app@db/", "saga", "app_saga", "postgresql://app@db/app_saga"}, // no database: the user's name, as libpq does
	} {
		name, err := ContextDatabase(c.base, c.ctx)
		if err != nil || name != c.name {
			t.Errorf("ContextDatabase(%s, %s) = %q, %v; want %q", c.base, c.ctx, name, err, c.name)
		}
		url, err := DatabaseURL(c.base, name)
		if err != nil || url != c.url {
			t.Errorf("DatabaseURL(%s, %s) = %q, %v; want %q", c.base, name, url, err, c.url)
		}
	}
	if _, err := DatabaseURL("mysql://x/y", "z"); err == nil {
		t.Error("a URL that is not postgres:// was accepted")
	}
	if _, err := ContextDatabase("postgres://127.0.0.1/", "orders"); err == nil {
		t.Error("a URL naming neither database nor user was accepted")
	}
}
