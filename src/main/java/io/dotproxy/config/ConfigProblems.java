package io.dotproxy.config;

import io.smallrye.config.ConfigValidationException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Words a value that the configuration library could not even convert (say
 * {@code dotproxy.timeout=abc}) as {@link ConfigError} words the values the proxy checks itself:
 * one line naming the setting, the value and what is allowed.
 */
final class ConfigProblems {
    /** SmallRye's message for a failed conversion (SRCFG00039), which names the property and its value. */
    private static final Pattern CONVERSION = Pattern.compile(
            "The config property (\\S+) with the config value \"(.*)\" threw an Exception whilst being converted.*",
            Pattern.DOTALL);
    private static final String PREFIX = "dotproxy.";
    private static final Map<String, Class<?>> TYPES = settingTypes(ProxyConfig.class, PREFIX, new HashMap<>());

    private ConfigProblems() {}

    /** One line per problem, in the order the library found them. */
    static List<String> describe(ConfigValidationException e) {
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < e.getProblemCount(); i++) {
            String problem = e.getProblem(i).getMessage();
            Matcher conversion = CONVERSION.matcher(problem);
            if (conversion.find()) {
                String setting = conversion.group(1);
                lines.add(new ConfigError(setting, conversion.group(2), allowed(TYPES.get(setting))).getMessage());
            } else {
                lines.add("Invalid configuration: " + problem.lines().findFirst().orElse(problem));
            }
        }
        return lines;
    }

    private static String allowed(Class<?> type) {
        if (type == Duration.class) {
            return "expected a duration such as 2s, 500ms or 1m";
        } else if (type == int.class || type == Integer.class) {
            return "expected a whole number";
        } else if (type == double.class || type == Double.class) {
            return "expected a number such as 0.05";
        } else if (type == boolean.class || type == Boolean.class) {
            return "expected true or false";
        }
        return "expected a value of the setting's form (see README.md, Configuration)";
    }

    /** The value type of each setting of a mapping interface, by full name (nested groups walked). */
    private static Map<String, Class<?>> settingTypes(Class<?> mapping, String prefix, Map<String, Class<?>> types) {
        for (Method method : mapping.getDeclaredMethods()) {
            if (method.getParameterCount() != 0 || method.isDefault() || Modifier.isStatic(method.getModifiers())) {
                continue;
            }
            String name = prefix + kebab(method.getName());
            Class<?> type = valueType(method.getGenericReturnType());
            if (type.isInterface() && type.getEnclosingClass() == ProxyConfig.class) {
                settingTypes(type, name + ".", types);
            } else {
                types.put(name, type);
            }
        }
        return types;
    }

    /** The element type of {@code Optional<T>} and {@code List<T>}, else the type itself. */
    private static Class<?> valueType(Type type) {
        if (type instanceof ParameterizedType generic) {
            Class<?> raw = (Class<?>) generic.getRawType();
            if (raw == Optional.class || raw == List.class) {
                return valueType(generic.getActualTypeArguments()[0]);
            }
            return raw;
        }
        return (Class<?>) type;
    }

    /** SmallRye's default naming: {@code maxInFlight} is {@code max-in-flight}. */
    private static String kebab(String camel) {
        return camel.replaceAll("([a-z0-9])([A-Z])", "$1-$2").toLowerCase(Locale.ROOT);
    }
}
