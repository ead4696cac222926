package dev.mooncakej.conductor.leadership;

import dev.mooncakej.cluster.LeaderLink;
import org.springframework.core.Ordered;
import org.springframework.http.HttpStatus;
import org.springframework.stereotype.Component;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

/**
 * Fences the store master by leadership epoch. Every answer on the internal plane carries this
 * conductor's epoch ({@value #HEADER}; 0 on a standby), and a worker remembers the highest it has
 * heard and refuses an answer with a lower one (a deposed leader's allocation never becomes a write).
 * A request that carries a higher epoch than this conductor's (its caller has heard a newer leader)
 * is refused with 409 before the master sees it.
 */
@Component
public class LeaderEpochFilter implements WebFilter, Ordered {
    /** The header that carries a leadership epoch, on requests (the highest the caller heard) and answers. */
    public static final String HEADER = LeaderLink.EPOCH_HEADER;

    private final Leadership leadership;

    public LeaderEpochFilter(Leadership leadership) {
        this.leadership = leadership;
    }

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        String path = exchange.getRequest().getPath().value();
        if (!path.startsWith("/internal/")) return chain.filter(exchange);
        long mine = leadership.epoch();
        exchange.getResponse().getHeaders().set(HEADER, Long.toString(mine));
        String heard = exchange.getRequest().getHeaders().getFirst(HEADER);
        if (heard != null && path.startsWith("/internal/store/")) {
            long theirs;
            try {
                theirs = Long.parseLong(heard.strip());
            } catch (NumberFormatException e) {
                exchange.getResponse().setStatusCode(HttpStatus.BAD_REQUEST);
                return exchange.getResponse().setComplete();
            }
            if (theirs > mine) { // the caller has heard a newer leader than this one: not the master any more
                exchange.getResponse().setStatusCode(HttpStatus.CONFLICT);
                return exchange.getResponse().setComplete();
            }
        }
        return chain.filter(exchange);
    }

    @Override
    public int getOrder() {
        return Ordered.HIGHEST_PRECEDENCE + 3; // after the canonical path and the credential
    }
}
