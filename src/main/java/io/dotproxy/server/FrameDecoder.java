package io.dotproxy.server;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * DNS over TCP framing (RFC 1035 §4.2.2: a 2-octet length, then the message) with a deadline on
 * each frame: once its first octet has arrived, the whole frame must arrive within the frame
 * timeout, or the connection is closed. A client that drips a frame an octet at a time holds a
 * connection and a buffer for nothing; an idle timeout alone would never fire on it.
 *
 * <p>At most one timer per connection, and only while a frame is partial: when it fires and the
 * frame that was partial has since completed, it sleeps until the deadline of the one now partial.
 */
final class FrameDecoder extends LengthFieldBasedFrameDecoder {
    /** Largest frame: a 65,535-octet message plus its 2-octet length (Netty counts both). */
    private static final int MAX_FRAME = 65535 + 2;

    private final long timeoutNanos;
    private final Runnable onTimeout;
    private long partialSinceNanos = -1;
    private boolean decodedAFrame;
    private ScheduledFuture<?> check;

    /** @param onTimeout counts the cut-off; the decoder closes the connection itself */
    FrameDecoder(long timeoutNanos, Runnable onTimeout) {
        super(MAX_FRAME, 0, 2, 0, 2);
        this.timeoutNanos = timeoutNanos;
        this.onTimeout = onTimeout;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
        decodedAFrame = false;
        super.channelRead(ctx, msg); // decodes every whole frame; what is left is a partial one
        if (!internalBuffer().isReadable()) {
            partialSinceNanos = -1;
        } else if (partialSinceNanos < 0 || decodedAFrame) {
            partialSinceNanos = System.nanoTime(); // a new frame began in this read
            if (check == null) {
                check = ctx.executor().schedule(() -> checkDeadline(ctx), timeoutNanos, TimeUnit.NANOSECONDS);
            }
        }
    }

    private void checkDeadline(ChannelHandlerContext ctx) {
        check = null;
        if (partialSinceNanos < 0 || !ctx.channel().isActive()) {
            return;
        }
        long waited = System.nanoTime() - partialSinceNanos;
        if (waited >= timeoutNanos) {
            onTimeout.run();
            ctx.close();
        } else {
            check = ctx.executor().schedule(() -> checkDeadline(ctx), timeoutNanos - waited, TimeUnit.NANOSECONDS);
        }
    }

    @Override
    protected void handlerRemoved0(ChannelHandlerContext ctx) {
        if (check != null) {
            check.cancel(false);
        }
    }

    @Override
    protected Object decode(ChannelHandlerContext ctx, ByteBuf in) throws Exception {
        Object frame = super.decode(ctx, in);
        decodedAFrame |= frame != null;
        return frame;
    }
}
