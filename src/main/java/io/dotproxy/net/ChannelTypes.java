package io.dotproxy.net;

import io.netty.channel.ChannelFactory;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.epoll.EpollChannelOption;
import io.netty.channel.epoll.EpollDatagramChannel;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.socket.DatagramChannel;
import io.netty.channel.socket.InternetProtocolFamily;
import io.netty.channel.socket.ServerSocketChannel;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioChannelOption;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import java.net.StandardSocketOptions;

/**
 * Channel classes that match an event loop: epoll channels on epoll loops (what Vert.x runs on
 * Linux when the native library loads), NIO channels on NIO loops (tests, other systems).
 */
public final class ChannelTypes {
    private ChannelTypes() {}

    /** Whether {@code group} (or the group of an event loop) runs on Linux epoll. */
    public static boolean isEpoll(EventLoopGroup group) {
        EventLoopGroup owner = group instanceof EventLoop loop && loop.parent() != null ? loop.parent() : group;
        return owner instanceof EpollEventLoopGroup;
    }

    /** The SO_REUSEPORT option for channels of {@code group}'s transport. */
    public static ChannelOption<Boolean> reusePort(EventLoopGroup group) {
        return isEpoll(group) ? EpollChannelOption.SO_REUSEPORT : NioChannelOption.of(StandardSocketOptions.SO_REUSEPORT);
    }

    public static ChannelFactory<DatagramChannel> datagram(EventLoopGroup group, InternetProtocolFamily family) {
        return isEpoll(group) ? () -> new EpollDatagramChannel(family) : () -> new NioDatagramChannel(family);
    }

    public static Class<? extends SocketChannel> socket(EventLoopGroup group) {
        return isEpoll(group) ? EpollSocketChannel.class : NioSocketChannel.class;
    }

    public static Class<? extends ServerSocketChannel> serverSocket(EventLoopGroup group) {
        return isEpoll(group) ? EpollServerSocketChannel.class : NioServerSocketChannel.class;
    }
}
