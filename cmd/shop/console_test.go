package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kgo"

	"shopstream/internal/devinfra/devstack"
	"shopstream/internal/testinfra/testenv"
	"shopstream/internal/tools/loadtest/report"
	"shopstream/schemas"
)

// EnvChromium names the browser the console's test drives (default: the
// first of chromium, chromium-browser, google-chrome on PATH).
const EnvChromium = "SHOP_TEST_CHROMIUM"

// chromium finds the headless browser, or skips (fails under
// SHOP_TEST_REQUIRE_TOOLS=1).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.MissingTool(t, "no chromium on PATH (apt-get install chromium)")
	return ""
}

// browser starts a headless chromium driven over CDP (chromedp) and
// returns a tab's context.
func browser(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1500, 1100))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	return ctx
}

// js evaluates expr in the page.
func js[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitJS polls expr (a boolean) in the page until it holds.
func waitJS(t *testing.T, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main') ? document.querySelector('main').innerText.slice(0, 3000) : ''`))
	t.Fatalf("%s: not seen in %v; the page shows:\n%s", what, timeout, body)
}

// screenshot writes the tab as PNG under SHOP_TEST_OUT.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	t.Logf("screenshot %s", testenv.WriteOut(t, name, png))
}

// The console of a running `shop dev`, driven in Debian's chromium,
// headless, from Go (chromedp): after a staff log-in, orders placed
// through the API move the topic offsets and a group's lag on the page
// without a reload; a poison record's dead letters leave the view when
// redriven from it; a rebuild started from the page reaches the switch.
// Then the API's p99 under a steady load test is measured with the
// console's live stream open and closed in turn (measureConsoleCost), and
// a Black Friday load test runs with every view captured as PNG
// (SHOP_TEST_OUT/console-*.png, CI's artifacts).
func TestConsoleInABrowser(t *testing.T) {
	testenv.Slow(t, "builds the shop, runs shop dev, chromium and two load tests, about 4 minutes")
	exe := chromium(t)
	bin := buildShop(t)
	dir := t.TempDir()
	dev := startDev(t, bin, dir, "--email-rate", "5")
	e, err := devstack.ReadEndpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := devstack.ReadSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := browser(t, exe)
	console := dev.admin + "/console"

	// Without JavaScript every view renders (only the live updates need it).
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct{ path, sel string }{{"", "#topics"}, {"/email", "#members"}, {"/dlq", "#letters"}, {"/replays", "#jobs"}, {"/orders", "#notices"}, {"/loadtest", "#noload"}} {
		if err := chromedp.Do(ctx, chromedp.Navigate(console+v.path)); err != nil {
			t.Fatal(err)
		}
		if n := js[int](t, ctx, fmt.Sprintf(`document.querySelectorAll(%q).length`, v.sel)); n != 1 {
			t.Errorf("%s without JavaScript: no %s", console+v.path, v.sel)
		}
	}
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false}); err != nil {
		t.Fatal(err)
	}

	// Staff log-in, then the pipeline.
	if err := chromedp.Do(ctx, chromedp.Navigate(console+"/login"),
		chromedp.SendKeys(`input[name=key]`, secrets.StaffKey), chromedp.Submit(`input[name=key]`),
		chromedp.WaitVisible(`#topics`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 10*time.Second, "the live updates", `document.getElementById('status').textContent === 'live' && +document.body.dataset.updated > 0`)
	endOf := func(topic string) int64 {
		s := js[string](t, ctx, fmt.Sprintf(`(document.querySelector('tr[data-topic=%q] .end') || {}).textContent || ''`, topic))
		n, _ := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		return n
	}
	js[bool](t, ctx, `window.__sameDocument = true`)
	before := endOf(schemas.TopicOrders)
	// Orders through the API: a product, a customer, 20 card orders; the
	// email group (5/s here) lags behind their invoices.
	product := createProduct(t, dev, 1000)
	customer := signUpCustomer(t, dev)
	var firstOrder string
	for i := range 20 {
		code, body, err := post(dev.client, dev.base+"/orders",
			fmt.Sprintf(`{"customer_id": %q, "payment_method": "card", "items": [{"product_id": %q, "quantity": 1}]}`, customer, product))
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("order %d: %d %s %v", i, code, body, err)
		}
		if i == 0 {
			var placed struct{ ID string }
			_ = json.Unmarshal(body, &placed)
			firstOrder = placed.ID
		}
	}
	waitJS(t, ctx, 20*time.Second, "the orders topic's end offsets moving on the page",
		fmt.Sprintf(`+((document.querySelector('tr[data-topic=%q] .end') || {}).textContent || 0) >= %d`, schemas.TopicOrders, before+20))
	waitJS(t, ctx, 30*time.Second, "the email group's lag rising on the page",
		`+((document.querySelector('[data-group="shop.processor.email.v1"] .lag') || {}).textContent || 0) > 0`)
	waitJS(t, ctx, 60*time.Second, "the email group's lag back to 0 on the page",
		`+((document.querySelector('[data-group="shop.processor.email.v1"] .lag') || {}).textContent || 1) === 0`)
	if !js[bool](t, ctx, `window.__sameDocument === true`) {
		t.Fatal("the page was reloaded: the figures must change in place")
	}
	t.Logf("on the page without a reload: %s end offsets %d → %d, the email group's lag rose and drained", schemas.TopicOrders, before, endOf(schemas.TopicOrders))

	// An order looked up on the page, with its saga's history; then a
	// product selling out while the page is open: its notice is pushed.
	if err := chromedp.Do(ctx, chromedp.Navigate(console+"/orders?id="+firstOrder), chromedp.WaitVisible(`#notices`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, 10*time.Second, "the orders page's stream", `document.getElementById('status').textContent === 'live'`)
	if h := js[string](t, ctx, `(document.getElementById('history') || {}).innerText || ''`); !strings.Contains(h, "placed") || !strings.Contains(h, "confirmed") {
		t.Errorf("order %s's history on the page: %q, want placed … confirmed", firstOrder, h)
	}
	last := createProduct(t, dev, 1)
	if code, body, err := post(dev.client, dev.base+"/orders",
		fmt.Sprintf(`{"customer_id": %q, "payment_method": "card", "items": [{"product_id": %q, "quantity": 1}]}`, customer, last)); err != nil || code != http.StatusAccepted {
		t.Fatalf("order of the last unit: %d %s %v", code, body, err)
	}
	waitJS(t, ctx, 20*time.Second, "the sold-out notice pushed to the orders page",
		fmt.Sprintf(`Array.from(document.querySelectorAll('#notices .notice.sold_out')).some(li => li.textContent.includes(%q))`, last))
	t.Logf("orders page: %s's history %q; sold-out notice of %s pushed", firstOrder,
		js[string](t, ctx, `document.getElementById('history').innerText`), last)

	// A poison record on the orders topic: its dead letters appear, and
	// leave the view once redriven from it.
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	poison := fmt.Sprintf("console-poison-%d", time.Now().UnixNano())
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: schemas.TopicOrders, Key: []byte(poison), Value: []byte("not avro")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	var letters []string
	for len(letters) == 0 && time.Now().Before(deadline) {
		if err := chromedp.Do(ctx, chromedp.Navigate(console+"/dlq"), chromedp.WaitVisible(`#letters`)); err != nil {
			t.Fatal(err)
		}
		letters = js[[]string](t, ctx, `Array.from(document.querySelectorAll('tr.letter')).map(r => r.dataset.letter)`)
		if len(letters) == 0 {
			time.Sleep(time.Second)
		}
	}
	if len(letters) == 0 {
		t.Fatal("the poison record's dead letters never showed on the page")
	}
	screenshot(t, ctx, "console-dlq.png")
	if err := chromedp.Do(ctx, chromedp.Click(`button[name=topic][value="`+schemas.TopicOrders+schemas.DLQSuffix+`"]`), chromedp.WaitVisible(`#msg`)); err != nil {
		t.Fatal(err)
	}
	msg := js[string](t, ctx, `document.getElementById('msg').textContent`)
	still := js[[]string](t, ctx, `Array.from(document.querySelectorAll('tr.letter')).map(r => r.dataset.letter)`)
	for _, l := range letters {
		for _, s := range still {
			if s == l {
				t.Errorf("dead letter %s still shown after the redrive (%s)", l, msg)
			}
		}
	}
	t.Logf("redrive from the page: %s; %d dead letters left the view", msg, len(letters))

	// A rebuild of the products read model, started from the page, watched
	// to the switch without a reload.
	if err := chromedp.Do(ctx, chromedp.Navigate(console+"/replays"), chromedp.WaitVisible(`#jobs`),
		chromedp.SetValue(`select[name=name]`, "products")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`button[name=mode][value=rebuild]`), chromedp.WaitVisible(`tr.job`)); err != nil {
		t.Fatal(err)
	}
	js[bool](t, ctx, `window.__sameDocument = true`)
	waitJS(t, ctx, 60*time.Second, "the rebuild reaching the switch", `['switched', 'done'].includes(document.querySelector('tr.job').dataset.phase)`)
	if !js[bool](t, ctx, `window.__sameDocument === true`) {
		t.Fatal("the replays page was reloaded while the rebuild ran")
	}
	screenshot(t, ctx, "console-replays.png")
	t.Logf("rebuild from the page: %s", js[string](t, ctx, `document.querySelector('tr.job').innerText`))

	// A Black Friday load test for the screenshots (below); its report
	// must be written.
	runLoad := func() {
		out := t.TempDir()
		cmd := exec.Command(bin, "loadtest", "--target", dev.base, "--data-dir", dir, "--profile", "blackfriday", "--duration", "30s",
			"--base-rps", "20", "--spike-x", "3", "--spike-for", "8s", "--email-quota", "5", "--drain-timeout", "2m", "--out", out)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("load test: %v\n%s", err, tail(string(b), 30))
		}
		var rep report.Report
		raw, err := os.ReadFile(filepath.Join(out, "report.json"))
		if err == nil {
			err = json.Unmarshal(raw, &rep)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// What the console costs the API: one steady load test runs against
	// the shop while the console's live pipeline stream is opened and
	// closed in turn, and a probe of our own reads the API meanwhile.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	cost := measureConsoleCost(t, dev, bin, dir, console, product, firstOrder)
	// A last run for the screenshots, which cost the machine more than a
	// page left open: every view, into the spike.
	shots := make(chan error, 1)
	go func() {
		time.Sleep(7 * time.Second)
		var err error
		for _, v := range []struct{ path, name string }{{"", "pipeline"}, {"/email", "email"}, {"/loadtest", "loadtest"}, {"/orders", "orders"}, {"", "pipeline-spike"}} {
			if err = chromedp.Do(ctx, chromedp.Navigate(console+v.path), chromedp.Sleep(2500*time.Millisecond)); err != nil {
				break
			}
			var png []byte
			if png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
				break
			}
			testenv.WriteOut(t, "console-"+v.name+".png", png)
		}
		shots <- err
	}()
	runLoad()
	if err := <-shots; err != nil {
		t.Fatalf("screenshots during the load: %v", err)
	}
	t.Log(cost)
	testenv.WriteOut(t, "console.txt", []byte(cost))
}

// treeCPU is the CPU time (user and system) used so far by process pid and
// every process below it (Linux /proc; 0 elsewhere): shop dev, and the
// embedded PostgreSQL it runs as children.
func treeCPU(pid int) time.Duration {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent, ticks := map[int]int{}, map[int]int64{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid … utime stime: fields after the ")".
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 13 {
			continue
		}
		parent[p], _ = strconv.Atoi(f[1])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks[p] = u + st
	}
	var sum int64
	for p := range ticks {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				sum += ticks[p]
				break
			}
		}
	}
	return time.Duration(sum) * time.Second / 100 // USER_HZ is 100 on Linux
}

// readStream reads the SSE stream at url until ctx ends, calling
// onFragment as each fragment arrives.
func readStream(ctx context.Context, url string, onFragment func()) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		if sc.Text() == "event: fragment" {
			onFragment()
		}
	}
}

// idleConsole is a little over the console's idle time (console.idleAfter),
// and consoleInterval its sampling interval.
const (
	idleConsole     = 22 * time.Second
	consoleInterval = 2 * time.Second
)

// createProduct registers a product with quantity units as staff and waits
// until its read model has it.
func createProduct(t *testing.T, dev *devProcess, quantity int) string {
	t.Helper()
	id := created(t, dev.client, dev.base+"/products", fmt.Sprintf(`{"title": "Maillot console", "price_cents": 2500, "quantity": %d}`, quantity))
	dev.waitProduct(t, id)
	return id
}

// signUpCustomer signs a customer up (staff may then order on their behalf).
func signUpCustomer(t *testing.T, dev *devProcess) string {
	t.Helper()
	return created(t, dev.client, dev.base+"/customers",
		fmt.Sprintf(`{"email": "console-%d@example.org", "name": "Console", "password": "a password for the tests"}`, time.Now().UnixNano()))
}
