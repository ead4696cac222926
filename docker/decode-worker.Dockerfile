# The decode-worker of Mooncake-J. Build from the repository root:
#   docker build -f docker/decode-worker.Dockerfile -t mooncakej/decode-worker .
# Stage 1 builds the jar with the Maven Wrapper on JDK 25; stage 2 runs it on a JDK 25 runtime as a
# non-root user, with a health check on /actuator/health.
FROM eclipse-temurin:25-jdk AS build
WORKDIR /src
COPY . .
RUN ./mvnw -B -ntp -q -pl decode-worker -am package -DskipTests

FROM eclipse-temurin:25-jre
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app mooncakej
WORKDIR /app
COPY --from=build /src/decode-worker/target/mooncakej-decode-worker.jar /app/app.jar
USER mooncakej
EXPOSE 8200 8030
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD curl -fsS http://127.0.0.1:8200/actuator/health || exit 1
ENTRYPOINT ["java", "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "-XX:MaxRAMPercentage=70", "-jar", "/app/app.jar"]
CMD ["--server.port=8200"]
