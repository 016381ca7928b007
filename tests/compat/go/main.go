// Command compatcheck drives a Kafka-protocol broker with one Go client and fails
// loudly (exit 1) on the first check that does not hold. It takes the bootstrap
// address, so the same checks run against Runnel and against Apache Kafka:
//
//	compatcheck -bootstrap 127.0.0.1:9092 franz|franz-kip848|sarama|kafka-go
//
// Every check prints an "ok:" line; names are unique per run (a random suffix), so
// the checks can run again against a broker that is still up.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sort"
	"strings"
	"time"
)

var checks = map[string]func(bootstrap string){
	"franz":          franzCheck,
	"franz-kip848":   franzKIP848Check,
	"sarama":         saramaCheck,
	"kafka-go":       kafkaGoCheck,
	"fetch-sessions": fetchSessionsCheck,
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "broker address host:port")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: compatcheck -bootstrap HOST:PORT CHECK...\nchecks: %s\n", strings.Join(checkNames(), ", "))
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	for _, name := range flag.Args() {
		if _, ok := checks[name]; !ok {
			flag.Usage()
			os.Exit(2)
		}
	}
	for _, name := range flag.Args() {
		start := time.Now()
		fmt.Printf("== %s against %s\n", name, *bootstrap)
		checks[name](*bootstrap)
		fmt.Printf("%s: %d checks passed in %.1fs\n", name, passed, time.Since(start).Seconds())
		passed = 0
	}
}

func checkNames() []string {
	var names []string
	for n := range checks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var passed int

var lastOK = time.Now()

func ok(format string, args ...any) {
	passed++
	if os.Getenv("COMPAT_TIMING") != "" {
		format = fmt.Sprintf("(+%.2fs) ", time.Since(lastOK).Seconds()) + format
		lastOK = time.Now()
	}
	fmt.Printf("  ok: "+format+"\n", args...)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

// must fails the run if err is not nil.
func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

// expect fails the run unless cond holds.
func expect(cond bool, format string, args ...any) {
	if !cond {
		fail(format, args...)
	}
}

// settle calls get until done holds for its result or 10 s pass, and returns the last
// result. Kafka applies a config change through its metadata log, so a describe right
// after an alter may still show the old value; Runnel applies it at once.
func settle[T any](get func() T, done func(T) bool) T {
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := get()
		if done(v) || time.Now().After(deadline) {
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unique names a topic or group so that reruns against a live broker do not collide.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%04x", prefix, time.Now().Unix()%100000, rand.IntN(0x10000))
}

// compressible is a record value that every codec shrinks (clients skip compression
// when it does not save bytes).
func compressible(i int) []byte {
	return []byte(fmt.Sprintf("value %06d %s", i, strings.Repeat("compressible ", 8)))
}

// sent is what a check produced, to compare with what it reads back.
type sent struct {
	key       string
	value     []byte
	partition int32
	offset    int64
	timestamp time.Time
}

// portOf is the port of a host:port address.
func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	must(err, "address "+addr)
	return port
}

// tp is a topic partition.
type tp struct {
	topic     string
	partition int32
}

// exactlyOnce checks that got (partition/offset of each record read, in any order)
// is every record of want once: nothing lost, nothing repeated.
func exactlyOnce(what string, want []sent, got map[tp][]int64, topic string) {
	seen := map[tp]map[int64]int{}
	total := 0
	for p, offs := range got {
		if seen[p] == nil {
			seen[p] = map[int64]int{}
		}
		for _, o := range offs {
			seen[p][o]++
			total++
			if seen[p][o] > 1 {
				fail("%s: %s/%d offset %d read %d times", what, p.topic, p.partition, o, seen[p][o])
			}
		}
	}
	for _, s := range want {
		if seen[tp{topic, s.partition}][s.offset] != 1 {
			fail("%s: %s/%d offset %d (key %s) never read", what, topic, s.partition, s.offset, s.key)
		}
	}
	expect(total == len(want), "%s: read %d records, want %d", what, total, len(want))
}
