package runnel.compat;

import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * What the checks share: "  ok: ..." per check. A failed check ends its section with
 * "FAIL: ..."; the next section still runs, and the process exits 1 if any failed.
 */
final class Checks {
    static final Duration TIMEOUT = Duration.ofSeconds(60);

    private static int count = 0;
    private static final java.util.List<String> failed = new java.util.ArrayList<>();

    private Checks() {}

    static final class CheckFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        CheckFailed(String msg) {
            super(msg);
        }
    }

    /** A check body; may throw anything, which fails the run. */
    interface Body {
        void run() throws Exception;
    }

    /**
     * Runs `body` and exits: 0 if every check held, 1 on the first failure. Exits
     * explicitly so that client threads cannot keep a failed run alive.
     */
    static void main(String name, Body body) {
        System.out.println("== " + name + ": kafka-clients " + kafkaVersion() + " (Java "
                + System.getProperty("java.version") + ")");
        section(name, body);
        int rc = failed.isEmpty() ? 0 : 1;
        System.out.println(name + ": " + count + " checks passed" + (failed.isEmpty() ? ""
                : "; FAILED sections: " + String.join(", ", failed)));
        System.out.flush();
        System.err.flush();
        System.exit(rc);
    }

    /**
     * Runs one part of a check: a failure in it is printed and counted, and the caller
     * goes on with the next part (which must not depend on this one having passed).
     */
    static void section(String name, Body body) {
        System.out.println("-- " + name);
        try {
            body.run();
        } catch (CheckFailed e) {
            System.out.flush();
            System.err.println("FAIL: " + name + ": " + e.getMessage());
            failed.add(name);
        } catch (Throwable e) {
            System.out.flush();
            System.err.println("FAIL: " + name + ": " + describe(e));
            e.printStackTrace();
            failed.add(name);
        }
        System.err.flush();
    }

    /** The kafka-clients version on the classpath, from the jar's own properties file. */
    static String kafkaVersion() {
        try (InputStream in = Checks.class.getResourceAsStream("/kafka/kafka-version.properties")) {
            if (in == null) {
                return "unknown";
            }
            Properties p = new Properties();
            p.load(in);
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    /** Whether a section has failed so far. */
    static boolean anyFailed() {
        return !failed.isEmpty();
    }

    static void ok(String what) {
        count++;
        System.out.println("  ok: " + what);
        System.out.flush();
    }

    static void check(boolean cond, String what, Object detail) {
        if (!cond) {
            throw new CheckFailed(what + " (got " + detail + ")");
        }
        ok(what);
    }

    static CheckFailed fail(String what) {
        return new CheckFailed(what);
    }

    static String describe(Throwable e) {
        Throwable t = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
        return t.getClass().getName() + ": " + t.getMessage();
    }

    /** The future's value; a failure is a failed check named `what`. */
    static <T> T get(Future<T> f, String what) throws Exception {
        try {
            return f.get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw new CheckFailed(what + " failed: " + describe(e));
        }
    }

    /** The exception the future fails with; succeeding is a failed check. */
    static Throwable failure(Future<?> f, String what) throws Exception {
        try {
            Object v = f.get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
            throw new CheckFailed(what + " succeeded (with " + v + "), expected an error");
        } catch (ExecutionException e) {
            return e.getCause() != null ? e.getCause() : e;
        }
    }

    /** Polls `cond` every 100 ms until it holds or `timeout` passes; returns whether it held. */
    static boolean waitFor(Duration timeout, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            if (cond.getAsBoolean()) {
                return true;
            }
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.sleep(100);
        }
    }
}
