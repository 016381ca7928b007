package runnel.compat.eventhubs;

import com.azure.core.amqp.exception.AmqpErrorCondition;
import com.azure.core.amqp.exception.AmqpException;

/**
 * What the checks share: "  ok: ..." per check. A failed check ends its section with
 * "FAIL: ..."; the next section still runs, and the process exits 1 if any failed.
 */
final class Checks {
    private static int count = 0;
    private static final java.util.List<String> failed = new java.util.ArrayList<>();

    private Checks() {}

    static final class CheckFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        CheckFailed(String msg) {
            super(msg);
        }
    }

    /** A check body; may throw anything, which fails its section. */
    interface Body {
        void run() throws Exception;
    }

    /** Exits 0 if every section held, else 1 (explicitly, so client threads cannot keep it alive). */
    static void exit(String name) {
        int rc = failed.isEmpty() ? 0 : 1;
        System.out.println(name + ": " + count + " checks passed" + (failed.isEmpty() ? ""
                : "; FAILED sections: " + String.join(", ", failed)));
        System.out.flush();
        System.err.flush();
        System.exit(rc);
    }

    /**
     * Runs one part of the check: a failure in it is printed and counted, and the caller
     * goes on with the next part (which must not depend on this one having passed).
     */
    static void section(String name, Body body) {
        System.out.println("-- " + name);
        System.out.flush();
        try {
            body.run();
        } catch (CheckFailed e) {
            System.out.flush();
            System.err.println("FAIL: " + name + ": " + e.getMessage());
            failed.add(name);
        } catch (Throwable e) {
            System.out.flush();
            System.err.println("FAIL: " + name + ": " + e);
            e.printStackTrace();
            failed.add(name);
        }
        System.err.flush();
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
        ok(what + " (" + detail + ")");
    }

    static CheckFailed fail(String what) {
        return new CheckFailed(what);
    }

    /** The first AmqpException in `e`'s cause chain, or null. */
    static AmqpException amqp(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof AmqpException a) {
                return a;
            }
            if (t.getCause() == t) {
                break;
            }
        }
        return null;
    }

    /** `e` is (or is caused by) an AmqpException with `condition`. */
    static void checkCondition(Throwable e, AmqpErrorCondition condition, String what) {
        AmqpException a = amqp(e);
        check(a != null && a.getErrorCondition() == condition, what + " fails with " + condition,
                a != null ? a.getErrorCondition() + ": " + a.getMessage() : String.valueOf(e));
    }

    /** Polls `cond` every 100 ms until it holds or `millis` pass; returns whether it held. */
    static boolean waitFor(long millis, java.util.function.BooleanSupplier cond)
            throws InterruptedException {
        long deadline = System.nanoTime() + millis * 1_000_000L;
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
